// A Go program calling chatstore: create a session, append two messages, read them
// back. CHATSTORE_TARGET (default 127.0.0.1:50051) and CHATSTORE_TENANT say where
// and for whom.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	chatstore "chatstore.dev/gen/go/chatstore/v1"
	"google.golang.org/grpc"
)

func main() {
	target, tenant := os.Getenv("CHATSTORE_TARGET"), os.Getenv("CHATSTORE_TENANT")
	if target == "" {
		target = "127.0.0.1:50051"
	}
	conn, err := grpc.Dial(target, grpc.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := chatstore.NewSessionServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	session, err := client.CreateSession(ctx, &chatstore.CreateSessionRequest{
		TenantId: tenant, Session: &chatstore.Session{Title: "from Go"},
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.AppendMessages(ctx, &chatstore.AppendMessagesRequest{
		TenantId: tenant, SessionId: session.Id, RequestId: "go-example-1",
		Messages: []*chatstore.Message{
			{Role: chatstore.Role_ROLE_USER, Content: "Hello from Go"},
			{Role: chatstore.Role_ROLE_ASSISTANT, Content: "Hello, Go"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	page, err := client.ListMessages(ctx, &chatstore.ListMessagesRequest{TenantId: tenant, SessionId: session.Id})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range page.Messages {
		fmt.Printf("%d %s: %s\n", m.Seq, m.Role, m.Content)
	}
}
