package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cache indexes by owner label: observe finds a job's children (and the StudentModel controller a model's)
// with one index lookup instead of scanning every cached object of the namespace, which made each pass
// O(jobs in the namespace) and a thousand jobs O(jobs²) in all.
const (
	indexJob   = "label:" + LabelJob
	indexModel = "label:" + LabelModel
)

// indexByLabel indexes each kind of objs by the value of label key under the field name index.
func indexByLabel(ctx context.Context, fi client.FieldIndexer, index, key string, objs ...client.Object) error {
	extract := func(o client.Object) []string {
		if v, ok := o.GetLabels()[key]; ok {
			return []string{v}
		}
		return nil
	}
	for _, o := range objs {
		if err := fi.IndexField(ctx, o, index, extract); err != nil {
			return fmt.Errorf("indexing %T by label %s: %w", o, key, err)
		}
	}
	return nil
}
