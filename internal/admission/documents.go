package admission

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/distillery-dev/distillery/config/crd"
)

// Set holds the schemas of several kinds, found by apiVersion and kind.
type Set struct {
	schemas map[schema.GroupVersionKind]*Schema
}

// NewSet prepares the schemas of every CRD given.
func NewSet(crds ...[]byte) (*Set, error) {
	set := &Set{schemas: map[schema.GroupVersionKind]*Schema{}}
	for _, c := range crds {
		schemas, err := NewSchemas(c)
		if err != nil {
			return nil, err
		}
		for _, s := range schemas {
			set.schemas[s.GVK] = s
		}
	}
	return set, nil
}

// Distillery is the Set of Distillery's own kinds, from the CRDs embedded at build time.
var Distillery = sync.OnceValues(func() (*Set, error) { return NewSet(crd.DistillationJob, crd.StudentModel) })

// Document is one object of a YAML stream and what admission said about it.
type Document struct {
	// Index is the document's 0-based position in the stream, counting empty documents.
	Index int
	// Object is the object as it would be stored when admitted, as read when refused.
	Object *unstructured.Unstructured
	// Err is the apiserver's refusal, or why the document could not be read.
	Err error
}

// Describe names the document the way kubectl does in its errors: kind and name, else its position.
func (d Document) Describe() string {
	if d.Object != nil && d.Object.GetName() != "" {
		return fmt.Sprintf("%s/%s", d.Object.GetKind(), d.Object.GetName())
	}
	return fmt.Sprintf("document %d", d.Index+1)
}

// CreateAll admits every object of a YAML (or JSON) stream as a create in namespace would. Empty
// documents are skipped; the error of one document does not stop the others.
func (s *Set) CreateAll(ctx context.Context, data []byte, namespace string) ([]Document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []Document
	for i := 0; ; i++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("reading YAML document %d: %w", i+1, err)
		}
		if len(strings.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		doc := Document{Index: i}
		doc.Object, doc.Err = s.create(ctx, raw, namespace)
		out = append(out, doc)
	}
}

func (s *Set) create(ctx context.Context, raw []byte, namespace string) (*unstructured.Unstructured, error) {
	// JSON numbers decode as the apiserver decodes them: whole numbers as int64.
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("not a YAML object: %v", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return u, fmt.Errorf("not a Kubernetes object: apiVersion and kind must be set")
	}
	sc, ok := s.schemas[gvk]
	if !ok {
		return u, fmt.Errorf("no matches for kind %q in version %q (this tool knows %s)",
			gvk.Kind, gvk.GroupVersion().String(), strings.Join(s.kinds(), ", "))
	}
	stored, err := sc.Create(ctx, obj, namespace)
	if err != nil {
		return u, err
	}
	return stored, nil
}

func (s *Set) kinds() []string {
	var out []string
	for gvk := range s.schemas {
		out = append(out, gvk.GroupVersion().String()+" "+gvk.Kind)
	}
	sort.Strings(out)
	return out
}

// stripComments drops full-line YAML comments, so a document of comments only counts as empty.
func stripComments(b []byte) string {
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
