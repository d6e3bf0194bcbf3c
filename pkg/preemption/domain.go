package preemption

import fwk "k8s.io/kube-scheduler/framework"

// domain is the nodes sharing one value of the topology key.
type domain struct {
	value string
	// nodes are indices into Request.Nodes.
	nodes []int
	names map[string]bool
}

// holds reports whether u has a pod on one of d's nodes.
func (d domain) holds(u *Unit) bool {
	for _, p := range u.Pods {
		if d.names[p.Spec.NodeName] {
			return true
		}
	}
	return false
}

// domainsOf splits the nodes by topologyKey, in the order values first
// appear; without a key the whole cluster is one domain. Nodes without the
// label belong to no domain.
func domainsOf(nodes []fwk.NodeInfo, topologyKey string) []domain {
	index := map[string]int{}
	var out []domain
	for n, ni := range nodes {
		value, ok := ni.Node().Labels[topologyKey]
		if topologyKey == "" {
			value, ok = "", true
		}
		if !ok {
			continue
		}
		i, seen := index[value]
		if !seen {
			i = len(out)
			index[value] = i
			out = append(out, domain{value: value, names: map[string]bool{}})
		}
		out[i].nodes = append(out[i].nodes, n)
		out[i].names[ni.Node().Name] = true
	}
	return out
}

func domainNote(topologyKey string) string {
	if topologyKey == "" {
		return ""
	}
	return " in any one " + topologyKey + " domain"
}
