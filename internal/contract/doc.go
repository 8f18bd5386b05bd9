// Package contract holds the Go side of the file contract between the operator and its workloads
// (docs/workloads.md): the stage configs the operator renders, the annotation records, the termination
// summaries and the progress reports. The Python student runtime implements the same contract; both read
// the examples in testdata/contract as test vectors.
package contract
