// etcd watch fan-out measured with etcd's own Go client (clientv3), not aetcd: N watches of
// one key spread over clients of -per-client watches each (one gRPC stream per client).
//
// Prints "ready N" once every watch is created, then one line per event received:
// "VERSION STAMP", VERSION the first 12 digits of the value (bench/etcdload.py padded) and
// STAMP CLOCK_MONOTONIC in seconds, the clock the Python publisher stamps with. Ends at
// -timeout or when stdin closes.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	"golang.org/x/sys/unix"
)

type event struct {
	version int64
	stamp   float64
}

func monotonic() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd client endpoint")
	key := flag.String("key", "", "the key to watch")
	watchers := flag.Int("watchers", 1, "watches in all")
	perClient := flag.Int("per-client", 500, "watches per client (gRPC stream)")
	timeout := flag.Duration("timeout", time.Minute, "end after this long")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	go func() { // the parent closing our stdin ends the run
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	events := make(chan event, 65536)
	var created sync.WaitGroup
	clients := (*watchers + *perClient - 1) / *perClient
	for c := 0; c < clients; c++ {
		client, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{*endpoint},
			DialTimeout: 10 * time.Second,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			os.Exit(1)
		}
		defer client.Close()
		n := *perClient
		if left := *watchers - c**perClient; left < n {
			n = left
		}
		for w := 0; w < n; w++ {
			created.Add(1)
			watch := client.Watch(ctx, *key, clientv3.WithCreatedNotify())
			go func() {
				first := true
				for response := range watch {
					if first && response.Created {
						first = false
						created.Done()
						continue
					}
					for _, ev := range response.Events {
						stamp := monotonic()
						version, _ := strconv.ParseInt(string(ev.Kv.Value[:12]), 10, 64)
						events <- event{version, stamp}
					}
				}
			}()
		}
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	created.Wait()
	fmt.Fprintf(out, "ready %d\n", *watchers)
	out.Flush()
	for {
		select {
		case <-ctx.Done():
			out.Flush()
			return
		case ev := <-events:
			fmt.Fprintf(out, "%d %.9f\n", ev.version, ev.stamp)
			if len(events) == 0 {
				out.Flush()
			}
		}
	}
}
