// Package dnstest is a small authoritative DNS server for tests: it
// answers A queries from a table the test controls, over UDP and TCP on
// a loopback port, so that tests can exercise gRPC's dns resolver the way
// a Kubernetes headless Service does (one name, one address per ready
// pod) without touching the host's resolver. Point a gRPC target at it
// with its authority: "dns://" + srv.Addr() + "/name:port".
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server answers A queries for the names set with Set; every other
// query gets NXDOMAIN (names it does not know) or an empty answer
// (other record types of names it knows).
type Server struct {
	mu    sync.RWMutex
	hosts map[string][]net.IP // fully qualified, lower case
	udp   *dns.Server
	tcp   *dns.Server
	addr  string
}

// Start listens on 127.0.0.1 (one port for UDP and TCP) and serves until
// Close.
func Start() (*Server, error) {
	s := &Server{hosts: map[string][]net.IP{}}
	// The TCP and UDP ports must be the same number: the resolver retries
	// a truncated UDP answer over TCP at the same address.
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		return nil, fmt.Errorf("dnstest: no port free for both UDP and TCP")
	}
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: l, Handler: h}
	started := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				started <- err
			}
		}()
	}
	for range 2 {
		if err := <-started; err != nil {
			s.Close()
			return nil, fmt.Errorf("dnstest: %w", err)
		}
	}
	return s, nil
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Set makes name resolve to ips (none: the name has no A records but
// exists, as a headless Service with no ready pod).
func (s *Server) Set(name string, ips ...string) {
	parsed := make([]net.IP, 0, len(ips))
	for _, ip := range ips {
		p := net.ParseIP(ip).To4()
		if p == nil {
			panic(fmt.Sprintf("dnstest: %q is not an IPv4 address", ip))
		}
		parsed = append(parsed, p)
	}
	s.mu.Lock()
	s.hosts[dns.Fqdn(strings.ToLower(name))] = parsed
	s.mu.Unlock()
}

// Close stops the server.
func (s *Server) Close() {
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			srv.Shutdown()
		}
	}
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		s.mu.RLock()
		ips, ok := s.hosts[strings.ToLower(q.Name)]
		s.mu.RUnlock()
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype != dns.TypeA {
			continue
		}
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: ip})
		}
	}
	w.WriteMsg(m)
}
