// Package integration runs cosched's scheduler against a real API server
// (kube-apiserver in-process, etcd from hack/build-etcd.sh) and checks
// where members land, or that they do not land at all.
package integration

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/kubernetes/test/integration/framework"

	"github.com/cosched/cosched/test/testutil"
)

func TestMain(m *testing.M) {
	if err := testutil.LocateAPIServerFixtures(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	framework.EtcdMain(m.Run)
}
