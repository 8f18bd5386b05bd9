// Package controllers reconciles DistillationJobs into their stage children (workspace, annotation Job,
// training Job, StudentModel) and StudentModels into a serving Deployment and Service.
//
// Files hold one subject each: builders_*.go are pure functions from the API object to the desired child
// objects; the policy files (stages.go, failure.go, suspend.go, ttl.go, deadline.go) decide what happens
// next from what was observed; status.go and conditions.go write the status once per pass.
package controllers
