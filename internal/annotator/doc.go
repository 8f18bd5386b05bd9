// Package annotator runs one shard of the annotation stage: it streams the shard's inputs from the
// dataset, asks the teacher for a rationale and a label for each (through the answer cache), judges the
// answers and appends one record per input to the shard's annotations file, reporting progress on the
// way. Its subpackages hold one subject each: dataset, prompt, teacher, parse, cache, store, progress.
package annotator
