// Verifies auditmesh's signed checkpoints and Merkle proofs with Go's reference
// implementation (golang.org/x/mod/sumdb/note and sumdb/tlog), independently of the
// Python code that made them. Input: one JSON document on stdin; prints "ok" or
// names the first check that failed and exits 1.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Leaf  string   `json:"leaf"`
	Proof []string `json:"proof"`
}

type consistency struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof []string `json:"proof"`
}

type input struct {
	Vkey        string        `json:"vkey"`
	Notes       []string      `json:"notes"`
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
}

func fail(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
	os.Exit(1)
}

func hash(b64 string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != tlog.HashSize {
		fail("bad hash %q", b64)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

func hashes(list []string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		out[i] = hash(s)
	}
	return out
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail("bad input: %v", err)
	}
	verifier, err := note.NewVerifier(in.Vkey)
	if err != nil {
		fail("bad verifier key: %v", err)
	}
	roots := map[int64]tlog.Hash{}
	for i, text := range in.Notes {
		n, err := note.Open([]byte(text), note.VerifierList(verifier))
		if err != nil {
			fail("note %d does not verify: %v", i, err)
		}
		lines := strings.Split(n.Text, "\n")
		if len(lines) < 4 {
			fail("note %d is not a checkpoint", i)
		}
		size, err := strconv.ParseInt(lines[1], 10, 64)
		if err != nil {
			fail("note %d: bad size", i)
		}
		roots[size] = hash(lines[2])
	}
	for i, p := range in.Inclusion {
		root, ok := roots[p.Size]
		if !ok {
			fail("inclusion %d: no checkpoint of size %d", i, p.Size)
		}
		leaf, err := base64.StdEncoding.DecodeString(p.Leaf)
		if err != nil {
			fail("inclusion %d: bad leaf", i)
		}
		if err := tlog.CheckRecord(hashes(p.Proof), p.Size, root, p.Index, tlog.RecordHash(leaf)); err != nil {
			fail("inclusion %d (leaf %d of %d): %v", i, p.Index, p.Size, err)
		}
	}
	for i, p := range in.Consistency {
		oldRoot, ok1 := roots[p.Old]
		newRoot, ok2 := roots[p.New]
		if !ok1 || !ok2 {
			fail("consistency %d: no checkpoint of size %d or %d", i, p.Old, p.New)
		}
		if err := tlog.CheckTree(hashes(p.Proof), p.New, newRoot, p.Old, oldRoot); err != nil {
			fail("consistency %d (%d -> %d): %v", i, p.Old, p.New, err)
		}
	}
	fmt.Println("ok")
}
