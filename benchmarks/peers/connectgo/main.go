// The ceiling row of `make bench`: connect-go serving the same BookService, HTTP/1.1 and h2c
// on one port, with code generated from benchmarks/proto/book.proto (see benchmarks/codegen.py,
// which builds this in a copy under build/bench/connectgo). Usage: server PORT.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	"connectrpc.com/connect"

	benchv1 "connectpy-bench/connectgo/gen/benchv1"
	"connectpy-bench/connectgo/gen/benchv1/benchv1connect"
)

type bookService struct{}

// The one book, as benchmarks/common.py has it.
func newBook() *benchv1.Book {
	return &benchv1.Book{Id: "1", Title: "Clean Code", Author: "Martin", Price: 42.99}
}

var streamed = newBook()

func (bookService) GetBook(
	_ context.Context, request *connect.Request[benchv1.GetBookRequest],
) (*connect.Response[benchv1.Book], error) {
	if request.Msg.GetId() != "1" {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("book %s not found", request.Msg.GetId()))
	}
	return connect.NewResponse(newBook()), nil
}

func (bookService) ListBooks(
	_ context.Context, request *connect.Request[benchv1.ListBooksRequest],
	stream *connect.ServerStream[benchv1.Book],
) error {
	for i := int64(0); i < request.Msg.GetCount(); i++ {
		if err := stream.Send(streamed); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: server PORT")
	}
	mux := http.NewServeMux()
	mux.Handle(benchv1connect.NewBookServiceHandler(bookService{}))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	server := &http.Server{Addr: "127.0.0.1:" + os.Args[1], Handler: mux, Protocols: protocols}
	log.Fatal(server.ListenAndServe())
}
