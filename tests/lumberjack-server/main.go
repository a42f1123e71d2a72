// lumberjack-server: the reference Lumberjack v2 server for oxibeat's tests.
//
// It is Elastic's github.com/elastic/go-lumber server package (the code behind Filebeat's
// lumberjack input) used as a library. go-lumber's own cmd/tst-lj only logs batch sizes; this
// helper prints every received event as one JSON line on stdout, so tests can check content.
//
// stderr gets one line when listening ("listening on ADDR") and one per batch
// ("batch events=N remote=ADDR tls=VERSION"). Built by tests/run.sh.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	v2 "github.com/elastic/go-lumber/server/v2"
)

// handshakingListener completes the TLS handshake in Accept: go-lumber reads the connection
// state when it creates its reader, which would otherwise be before the handshake.
type handshakingListener struct{ net.Listener }

func (l handshakingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			log.Printf("TLS handshake with %s failed: %v", c.RemoteAddr(), err)
			_ = c.Close()
			continue
		}
		_ = tc.SetDeadline(time.Time{})
		return tc, nil
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "host:port to listen on")
	cert := flag.String("cert", "", "PEM server certificate (enables TLS)")
	key := flag.String("key", "", "PEM server key")
	clientCA := flag.String("client-ca", "", "PEM CA: require client certificates signed by it")
	ackDelay := flag.Duration("ack-delay", 0, "hold each batch this long before ACKing it (keepalive ACK(0)s go out meanwhile)")
	keepalive := flag.Duration("keepalive", 3*time.Second, "interval of ACK(0) keepalives while a batch is held (go-lumber's default)")
	flag.Parse()
	log.SetOutput(os.Stderr)
	log.SetFlags(log.Lmicroseconds)

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatalf("tls: %v", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				log.Fatalf("client-ca: %v", err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		l = handshakingListener{tls.NewListener(l, cfg)}
	}
	s, err := v2.NewWithListener(l, v2.Keepalive(*keepalive))
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", l.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		_ = s.Close()
		os.Exit(0)
	}()

	out := json.NewEncoder(os.Stdout)
	for batch := range s.ReceiveChan() {
		tlsVersion := "none"
		if batch.TLS != nil {
			tlsVersion = tls.VersionName(batch.TLS.Version)
		}
		for _, ev := range batch.Events {
			if err := out.Encode(ev); err != nil {
				log.Fatalf("stdout: %v", err)
			}
		}
		fmt.Fprintf(os.Stderr, "batch events=%d remote=%s tls=%s\n", len(batch.Events), batch.RemoteAddr, tlsVersion)
		if *ackDelay > 0 {
			b := batch
			go func() {
				time.Sleep(*ackDelay)
				b.ACK()
			}()
		} else {
			batch.ACK()
		}
	}
}
