// Package annotator runs one shard of the annotation stage: it streams the shard's inputs from the
// dataset, asks the teacher for a rationale and a label for each (through the answer cache), judges the
// answers and appends one record per input to the shard's annotations file, reporting progress on the
// way, within the teacher budget the shards share. It also annotates the shard's part of the eval file, into
// its own file. Its subpackages hold one subject each: dataset, prompt, teacher, parse, cache, store,
// progress, budget (the shared ledger and the shard's meter), kubeapi (the in-cluster API requests of
// progress and budget).
package annotator
