package proxy_test

import (
	"context"
	"log"
	"net/url"
	"time"

	"github.com/pxperf/pxperf/config"
	"github.com/pxperf/pxperf/proxy"
	"github.com/pxperf/pxperf/service"
)

// A recording proxy on 127.0.0.1:3128, chained to px on 127.0.0.1:3129
// except for intranet hosts and a development server on localhost:8080
// (which, inside this host, it reaches only when allowed to), publishing
// into a pxperf in the same process.
func Example() {
	srv, err := service.New(config.Default(), service.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown()
	p, err := proxy.New(proxy.Config{
		Listen:       "127.0.0.1:3128",
		Upstream:     &url.URL{Scheme: "http", Host: "127.0.0.1:3129"},
		NoProxy:      "localhost,127.0.0.1,.intranet.example",
		AllowTargets: "localhost:8080",
	}, srv.Service(), nil)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := p.ListenAndServe(); err != nil {
			log.Print(err)
		}
	}()
	// … until it is time to stop:
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Print(err)
	}
}
