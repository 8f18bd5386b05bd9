// Command clusterdns is the local dev cluster's DNS server: the small part of CoreDNS's kubernetes plugin
// that pods need to reach each other through Service names. It watches Services and EndpointSlices and
// answers, under the cluster domain:
//
//	<svc>.<ns>.svc.<domain>           A: the ClusterIP; for a headless Service, the ready endpoint IPs
//	<host>.<svc>.<ns>.svc.<domain>    A: the endpoint with that hostname (StatefulSet pods)
//	_<port>._<proto>.<svc>.<ns>.svc.<domain>  SRV: the named port
//
// Other record types of a known name get an empty NOERROR answer; unknown names get NXDOMAIN. Names outside
// the cluster domain are refused unless -upstream names a server to forward them to (off by default).
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/clientcmd"
)

type server struct {
	domain   string // "cluster.local."
	ttl      uint32
	upstream string
	svcs     corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig")
	listen := flag.String("listen", "127.0.0.1:53", "address to serve on (UDP and TCP)")
	domain := flag.String("domain", "cluster.local", "cluster domain")
	upstream := flag.String("upstream", "", "server to forward other names to (host:port); empty: refuse them")
	ttl := flag.Uint("ttl", 5, "TTL of answers, seconds")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	f := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	s := &server{
		domain:   dns.Fqdn(strings.ToLower(*domain)),
		ttl:      uint32(*ttl),
		upstream: *upstream,
		svcs:     f.Core().V1().Services().Lister(),
		slices:   f.Discovery().V1().EndpointSlices().Lister(),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	f.Start(ctx.Done())
	for t, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			log.Fatalf("cache of %v did not sync", t)
		}
	}
	for _, nw := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *listen, Net: nw, Handler: s}
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				log.Fatalf("%s %s: %v", nw, *listen, err)
			}
		}()
		defer srv.Shutdown()
	}
	log.Printf("serving %s on %s", s.domain, *listen)
	<-ctx.Done()
	os.Exit(0)
}

func (s *server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	qname := strings.ToLower(q.Name)
	if !dns.IsSubDomain(s.domain, qname) {
		s.forward(w, req)
		return
	}
	rrs, found := s.lookup(qname, q.Qtype)
	if !found {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.soa()}
	} else {
		m.Answer = rrs
		if len(rrs) == 0 {
			m.Ns = []dns.RR{s.soa()}
		}
	}
	w.WriteMsg(m)
}

func (s *server) forward(w dns.ResponseWriter, req *dns.Msg) {
	if s.upstream == "" {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	c := &dns.Client{Net: w.LocalAddr().Network(), Timeout: 3 * time.Second}
	resp, _, err := c.Exchange(req, s.upstream)
	if err != nil {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	}
	w.WriteMsg(resp)
}

func (s *server) soa() dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: s.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.ttl},
		Ns: "ns.dns." + s.domain, Mbox: "hostmaster." + s.domain, Serial: uint32(time.Now().Unix()),
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: s.ttl}
}

// lookup returns the records of qname of type qtype, and whether the name exists at all.
func (s *server) lookup(qname string, qtype uint16) ([]dns.RR, bool) {
	rel := strings.TrimSuffix(strings.TrimSuffix(qname, s.domain), ".")
	if rel == "" || rel == "svc" {
		return nil, true // the zone apex and svc.<domain> exist (empty non-terminals)
	}
	labels := dns.SplitDomainName(rel)
	n := len(labels)
	if n < 2 || labels[n-1] != "svc" {
		return nil, false
	}
	switch n {
	case 2: // <ns>.svc
		return nil, s.namespaceExists(labels[0])
	case 3: // <svc>.<ns>.svc
		return s.serviceRecords(qname, labels[1], labels[0], qtype)
	case 4: // <host>.<svc>.<ns>.svc
		return s.hostRecords(qname, labels[2], labels[1], labels[0], qtype)
	case 5: // _<port>._<proto>.<svc>.<ns>.svc
		if strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_") {
			return s.srvRecords(qname, labels[3], labels[2], labels[0][1:], labels[1][1:], qtype)
		}
	}
	return nil, false
}

func (s *server) namespaceExists(ns string) bool {
	l, _ := s.svcs.Services(ns).List(labels.Everything())
	return len(l) > 0
}

func (s *server) a(name string, ip string) dns.RR {
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.ttl}, A: net.ParseIP(ip).To4()}
}

// readyEndpoints lists the ready endpoints of a Service.
func (s *server) readyEndpoints(ns, svc string) []discoveryv1.Endpoint {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc})
	slices, _ := s.slices.EndpointSlices(ns).List(sel)
	var eps []discoveryv1.Endpoint
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				eps = append(eps, ep)
			}
		}
	}
	return eps
}

func (s *server) serviceRecords(qname, ns, name string, qtype uint16) ([]dns.RR, bool) {
	svc, err := s.svcs.Services(ns).Get(name)
	if err != nil {
		return nil, false
	}
	if qtype != dns.TypeA && qtype != dns.TypeANY {
		return nil, true
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: s.ttl},
			Target: dns.Fqdn(svc.Spec.ExternalName)}}, true
	}
	if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		return []dns.RR{s.a(qname, svc.Spec.ClusterIP)}, true
	}
	var rrs []dns.RR
	for _, ep := range s.readyEndpoints(ns, name) {
		for _, ip := range ep.Addresses {
			rrs = append(rrs, s.a(qname, ip))
		}
	}
	return rrs, true
}

func (s *server) hostRecords(qname, ns, svc, host string, qtype uint16) ([]dns.RR, bool) {
	if _, err := s.svcs.Services(ns).Get(svc); err != nil {
		return nil, false
	}
	var rrs []dns.RR
	found := false
	for _, ep := range s.readyEndpoints(ns, svc) {
		if ep.Hostname == nil || *ep.Hostname != host {
			continue
		}
		found = true
		if qtype == dns.TypeA || qtype == dns.TypeANY {
			for _, ip := range ep.Addresses {
				rrs = append(rrs, s.a(qname, ip))
			}
		}
	}
	return rrs, found
}

func (s *server) srvRecords(qname, ns, svcName, port, proto string, qtype uint16) ([]dns.RR, bool) {
	svc, err := s.svcs.Services(ns).Get(svcName)
	if err != nil {
		return nil, false
	}
	for _, p := range svc.Spec.Ports {
		if p.Name != port || !strings.EqualFold(string(p.Protocol), proto) {
			continue
		}
		if qtype != dns.TypeSRV && qtype != dns.TypeANY {
			return nil, true
		}
		target := svcName + "." + ns + ".svc." + s.domain
		return []dns.RR{&dns.SRV{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: s.ttl},
			Priority: 0, Weight: 100, Port: uint16(p.Port), Target: target}}, true
	}
	return nil, false
}
