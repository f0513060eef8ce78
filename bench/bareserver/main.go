// Command bareserver is the baseline of the handler start-up benchmark
// (internal/systemtest BenchmarkHandlerStartToReady): the smallest Go HTTP server that
// answers GET / on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, as a custom handler must.
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	addr := "127.0.0.1:" + os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	fmt.Fprintln(os.Stderr, "bareserver:", err)
	os.Exit(1)
}
