package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// renderNamespacedOverlay runs kubectl kustomize config/namespaced and returns the operator's Role and
// RoleBinding and its Deployment.
func renderNamespacedOverlay(t *testing.T) (*rbacv1.Role, *rbacv1.RoleBinding, *appsv1.Deployment) {
	t.Helper()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		kubectl, _ = filepath.Abs(filepath.Join("..", "..", "bin", "k8s", "kubectl"))
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join("..", "..", "config", "namespaced")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/namespaced: %v\n%s", err, out)
	}
	var role *rbacv1.Role
	var binding *rbacv1.RoleBinding
	var deploy *appsv1.Deployment
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var obj metav1.PartialObjectMetadata
		decodeInto(t, raw.Raw, &obj)
		switch {
		case obj.Kind == "ClusterRoleBinding" || (obj.Kind == "ClusterRole" && obj.Name == "distillery-manager-role"):
			t.Errorf("the namespaced install still grants the operator a %s", obj.Kind)
		case obj.Kind == "Role" && obj.Name == "distillery-manager-role":
			role = &rbacv1.Role{}
			decodeInto(t, raw.Raw, role)
		case obj.Kind == "RoleBinding" && obj.Name == "distillery-manager-rolebinding":
			binding = &rbacv1.RoleBinding{}
			decodeInto(t, raw.Raw, binding)
		case obj.Kind == "Deployment":
			deploy = &appsv1.Deployment{}
			decodeInto(t, raw.Raw, deploy)
		}
	}
	if role == nil || binding == nil || deploy == nil || len(binding.Subjects) != 1 || binding.Namespace != role.Namespace {
		t.Fatalf("the overlay should render the manager Role, a RoleBinding in its namespace and the Deployment")
	}
	return role, binding, deploy
}

func decodeInto(t *testing.T, raw []byte, obj any) {
	t.Helper()
	if err := yaml.Unmarshal(raw, obj); err != nil {
		t.Fatal(err)
	}
}
