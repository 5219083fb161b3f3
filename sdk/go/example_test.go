package helixflow_test

// Examples of sdk/go/README.md, compiled by `go test` and `go vet` (they need a node,
// so they are not run here; e2e_test.go runs the same calls against one).

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"helixflow"
)

func ExampleClient_CreateChatCompletion() {
	ctx := context.Background()
	client := helixflow.NewClient("your-key")
	response, err := client.CreateChatCompletion(ctx, helixflow.ChatCompletionRequest{
		Model:       "smollm2-135m-instruct",
		Messages:    []helixflow.ChatMessage{{Role: "user", Content: "What is the capital of France?"}},
		Temperature: helixflow.Float64(0),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(response.Choices[0].Message.Content)
}

func ExampleClient_CreateChatCompletionStream() {
	ctx := context.Background()
	client := helixflow.NewClient("your-key")
	stream, err := client.CreateChatCompletionStream(ctx, helixflow.ChatCompletionRequest{
		Model:    "smollm2-135m-instruct",
		Messages: []helixflow.ChatMessage{{Role: "user", Content: "Hello!"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for stream.Next() {
		chunk := stream.Current()
		if len(chunk.Choices) > 0 {
			fmt.Print(chunk.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
}

func ExampleNewClient() {
	client := helixflow.NewClient("your-key",
		helixflow.WithBaseURL("https://edge.example.com"),
		helixflow.WithTenant("acme"),
		helixflow.WithHTTPClient(&http.Client{}),
		helixflow.WithTimeout(30*time.Second),
		helixflow.WithMaxRetries(3),
	)
	fmt.Println(client.BaseURL())
	// Output: https://edge.example.com
}

func ExampleFunctionsService_DeployFile() {
	ctx := context.Background()
	client := helixflow.NewClient("your-key", helixflow.WithTenant("acme"))
	d, err := client.Functions.DeployFile(ctx, "echo-event", "echo_event.wasm", &helixflow.DeployOptions{
		Alias:    "live",
		Progress: func(sent, total int64) { log.Printf("%d/%d bytes", sent, total) },
	})
	if err != nil {
		log.Fatal(err)
	}
	inv, err := client.Functions.Invoke(ctx, "echo-event", []byte(`{"x":1}`), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Version.Version, string(inv.Payload))
}

func ExampleEventsService_Replay() {
	ctx := context.Background()
	client := helixflow.NewClient("your-key", helixflow.WithTenant("acme"))
	failed, err := client.Events.List(ctx, &helixflow.EventListOptions{Status: "failed"})
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range failed {
		again, err := client.Events.Replay(ctx, ev.ID)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.ID, "->", again.ID)
	}
}

func ExampleAPIError() {
	ctx := context.Background()
	client := helixflow.NewClient("your-key", helixflow.WithTenant("acme"))
	_, err := client.Functions.Get(ctx, "no-such-function")
	var apiErr *helixflow.APIError
	if errors.As(err, &apiErr) {
		log.Printf("%d %s: %s (request %s)", apiErr.StatusCode, apiErr.Code, apiErr.Message, apiErr.RequestID)
	}
	if helixflow.IsNotFound(err) {
		fmt.Println("no such function")
	}
}
