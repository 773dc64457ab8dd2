// CoreDNS with the plugins the test cluster's Corefile (images/coredns/coredns.yaml) uses and
// no others. The release binary compiles in every plugin, among them the AWS, Azure, Google
// Cloud, etcd and tracing clients, which were most of a cold build's work; a Corefile that
// names a plugin left out here is refused at start with "unknown directive".
//
// Built by scripts/build-tools against this module, which requires only CoreDNS: minimal
// version selection then picks exactly the dependency versions of CoreDNS's own go.mod.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
