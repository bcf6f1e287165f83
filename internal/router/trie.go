package router

import (
	"math"
	"strings"
)

// The topic index is a trie over topic levels. Each filter is inserted level
// by level ("+" gets its own edge); a node records the lowest route index of
// the filters that end there and of those that end in "#" below it. Matching a
// topic walks only the branches that exist for its levels, so the cost
// depends on the topic's depth and on how many filters overlap it, not on the
// number of routes. "First match wins" is kept by taking the lowest index
// found, and a subtree whose lowest index cannot beat the best so far is not
// entered.

const noRoute = math.MaxInt32

type node struct {
	children map[string]*node
	plus     *node
	end      int32 // lowest route ending exactly here
	hash     int32 // lowest route "<this node>/#" (matches here and below)
	min      int32 // lowest route anywhere in this subtree
}

func newNode() *node { return &node{end: noRoute, hash: noRoute, min: noRoute} }

type trie struct{ root *node }

func newTrie() *trie { return &trie{root: newNode()} }

// insert adds a valid filter for route idx. Inserting in increasing idx order
// is not required; the lowest index always wins.
func (t *trie) insert(filter string, idx int32) {
	n := t.root
	n.min = min(n.min, idx)
	for level := range strings.SplitSeq(filter, "/") {
		switch level {
		case "#":
			n.hash = min(n.hash, idx)
			return
		case "+":
			if n.plus == nil {
				n.plus = newNode()
			}
			n = n.plus
		default:
			c := n.children[level]
			if c == nil {
				if n.children == nil {
					n.children = make(map[string]*node)
				}
				c = newNode()
				n.children[level] = c
			}
			n = c
		}
		n.min = min(n.min, idx)
	}
	n.end = min(n.end, idx)
}

// match returns the lowest route index whose filter matches topic, or noRoute.
// Per MQTT 5 §4.7.2 a topic beginning with "$" is not matched by a filter
// beginning with a wildcard.
func (t *trie) match(topic string) int32 {
	best := int32(noRoute)
	wild := !strings.HasPrefix(topic, "$")
	t.root.walk(topic, 0, wild, &best)
	return best
}

// walk matches the levels of topic from offset start (start > len(topic)
// when all levels are consumed). wild says whether wildcards may match here.
func (n *node) walk(topic string, start int, wild bool, best *int32) {
	if n.min >= *best {
		return
	}
	if wild && n.hash < *best {
		*best = n.hash
	}
	if start > len(topic) {
		if n.end < *best {
			*best = n.end
		}
		return
	}
	end := strings.IndexByte(topic[start:], '/')
	if end < 0 {
		end = len(topic)
	} else {
		end += start
	}
	if c := n.children[topic[start:end]]; c != nil {
		c.walk(topic, end+1, true, best)
	}
	if wild && n.plus != nil {
		n.plus.walk(topic, end+1, true, best)
	}
}
