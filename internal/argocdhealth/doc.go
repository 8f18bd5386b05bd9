// Package argocdhealth holds the tests of the Argo CD health checks in config/argocd: each Lua script
// runs in a Lua interpreter against sample DistillationJobs and StudentModels.
package argocdhealth
