// Command etcd is a thin wrapper that builds the upstream etcd server binary
// from the pinned go.etcd.io/etcd/server/v3 module. It exists so that the
// integration tests can get an etcd without downloading prebuilt release
// artifacts: hack/build-etcd.sh compiles it into _output/bin/etcd.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
