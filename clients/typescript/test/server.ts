// A real chatstore server for the tests: `chatstore-server` (CHATSTORE_SERVER, else the
// repository's .venv) on a loopback port, over a SQLite file of the test's own.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const BINARY = process.env.CHATSTORE_SERVER ?? path.join(REPO, ".venv", "bin", "chatstore-server");

export class TestServer {
  private constructor(
    private process: ChildProcess,
    readonly port: number,
    private readonly database: string,
  ) {}

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Start a server on `port` (0: any free port) over `database` (a new SQLite file by default). */
  static async start(port = 0, database = path.join(mkdtempSync(path.join(tmpdir(), "chatstore-ts-")), "db.sqlite")): Promise<TestServer> {
    const child = spawn(BINARY, ["--listen", `127.0.0.1:${port}`, "--database-url", `sqlite:///${database}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const bound = await new Promise<number>((resolve, reject) => {
      let log = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        log += chunk.toString();
        const found = /\(port (\d+)\)/.exec(log);
        if (found?.[1]) resolve(Number(found[1]));
      });
      child.on("exit", (code) => reject(new Error(`chatstore-server exited (${code}) before serving:\n${log}`)));
    });
    child.stderr?.resume();
    return new TestServer(child, bound, database);
  }

  /** SIGTERM, and wait for the exit. */
  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    this.process.kill("SIGTERM");
    await exited;
  }

  /** Stop, then serve again on the same port and database. */
  async restart(): Promise<void> {
    await this.stop();
    const again = await TestServer.start(this.port, this.database);
    this.process = again.process;
  }
}
