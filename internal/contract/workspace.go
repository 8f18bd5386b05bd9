package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Each job run has its own folder in the workspace volume, so jobs that share a claim
// (spec.storage.existingClaim), or a new job under the name of a deleted one, never resume or overwrite
// each other's files. Only the teacher cache, which is content-addressed, is shared.
const (
	// JobsDir is the folder of the job folders, relative to the workspace root.
	JobsDir = "jobs"
	// CacheDir is the shared teacher cache, relative to the workspace root.
	CacheDir = "cache"
	// JobFileName is the file in a job folder that says which job run owns it (testdata/contract/job.json).
	JobFileName = "job.json"
)

// JobDir is a job run's folder relative to the workspace root: jobs/<job>-<uid>.
func JobDir(job, uid string) string { return filepath.Join(JobsDir, job+"-"+uid) }

// JobStamp is job.json: the job run whose folder this is.
type JobStamp struct {
	Job string `json:"job"`
	UID string `json:"uid"`
}

// WorkspaceConflictError says a job folder belongs to another job run; its files must not be resumed.
type WorkspaceConflictError struct {
	Dir         string
	Found, Want JobStamp
}

func (e *WorkspaceConflictError) Error() string {
	return fmt.Sprintf("workspace folder %s belongs to job %s (uid %s), not to this job %s (uid %s); its files are not resumed",
		e.Dir, e.Found.Job, e.Found.UID, e.Want.Job, e.Want.UID)
}

// ClaimJobDir makes dir the folder of the job run want: it creates dir and job.json when they do not exist,
// and returns a *WorkspaceConflictError when job.json names another uid. Stage pods of one run may claim
// at once: job.json is written under a temporary name and renamed, so a reader sees all of it or nothing.
func ClaimJobDir(dir string, want JobStamp) error {
	path := filepath.Join(dir, JobFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return writeJobStamp(dir, want)
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	var found JobStamp
	if err := json.Unmarshal(b, &found); err != nil {
		return &WorkspaceConflictError{Dir: dir, Found: JobStamp{Job: "unknown (unreadable " + JobFileName + ")"}, Want: want}
	}
	if found.UID != want.UID {
		return &WorkspaceConflictError{Dir: dir, Found: found, Want: want}
	}
	return nil
}

func writeJobStamp(dir string, s JobStamp) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating job folder: %w", err)
	}
	b, _ := json.Marshal(s)
	tmp, err := os.CreateTemp(dir, "."+JobFileName+".*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", JobFileName, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	_, err = tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", JobFileName, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, JobFileName)); err != nil {
		return fmt.Errorf("renaming %s into place: %w", JobFileName, err)
	}
	return nil
}
