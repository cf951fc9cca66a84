// A TCP proxy in front of a server that loses the answer of the first request carrying
// `marker`: the request reaches the server (which commits it), the connection is cut
// before the answer gets back. A client sees UNAVAILABLE, as after a network failure.
import net from "node:net";

export class AnswerLosingProxy {
  private cuts = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** How many answers were lost so far. */
  get lost(): number {
    return this.cuts;
  }

  static async start(upstream: number, marker: string, times = 1): Promise<AnswerLosingProxy> {
    let proxy: AnswerLosingProxy | undefined;
    const server = net.createServer((client) => {
      const backend = net.connect(upstream, "127.0.0.1");
      for (const socket of [client, backend]) {
        proxy?.sockets.add(socket);
        socket.on("close", () => proxy?.sockets.delete(socket));
      }
      let armed = false;
      client.on("data", (chunk: Buffer) => {
        if (proxy && proxy.cuts < times && chunk.includes(marker)) armed = true;
        backend.write(chunk);
      });
      backend.on("data", (chunk: Buffer) => {
        if (armed && proxy) {
          // The answer to the marked request: dropped, and the connection cut.
          proxy.cuts += 1;
          armed = false;
          client.destroy();
          backend.destroy();
          return;
        }
        client.write(chunk);
      });
      const close = () => {
        client.destroy();
        backend.destroy();
      };
      client.on("error", close).on("close", close);
      backend.on("error", close).on("close", close);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new AnswerLosingProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  /** Stop accepting, and cut the connections still open (an idle HTTP/2 one stays). */
  async stop(): Promise<void> {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}
