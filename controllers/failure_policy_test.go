package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

func TestStuckStage(t *testing.T) {
	created := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	const grace = 2 * time.Minute
	waiting := func(reason, msg string) []corev1.Pod {
		return pods(utiltesting.MakePod("p", "ns").Created(created).Waiting(reason, msg).Obj())
	}
	cases := []struct {
		name        string
		pods        []corev1.Pod
		after       time.Duration
		wantFail    string // substring of the failure message, "" for no failure
		wantWait    string // substring of the wait, "" for none
		wantRetryIn time.Duration
	}{
		{name: "no pods"},
		{name: "creating, within grace", pods: waiting("ContainerCreating", ""), after: 30 * time.Second,
			wantWait: "pod p is waiting: ContainerCreating", wantRetryIn: 90 * time.Second},
		{name: "image pull error, within grace", pods: waiting("ErrImagePull", "pull access denied"), after: time.Minute,
			wantWait: "ErrImagePull: pull access denied", wantRetryIn: time.Minute},
		{name: "image pull back-off, past grace", pods: waiting("ImagePullBackOff", `Back-off pulling image "x"`), after: 3 * time.Minute,
			wantFail: `pod p is waiting: ImagePullBackOff: Back-off pulling image "x" (for 3m0s)`},
		{name: "missing secret, past grace", pods: waiting("CreateContainerConfigError", `secret "teacher-key" not found`), after: grace,
			wantFail: `secret "teacher-key" not found`},
		{name: "invalid image name, at once", pods: waiting("InvalidImageName", "invalid reference format"), after: 0,
			wantFail: "InvalidImageName: invalid reference format"},
		{name: "a running pod is not waiting", pods: pods(utiltesting.MakePod("p", "ns").Succeeded("{}").Obj())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fail, wait, retryIn := stuckStage(tc.pods, created.Add(tc.after), grace)
			switch {
			case tc.wantFail == "" && fail != nil:
				t.Errorf("failed: %+v", fail)
			case tc.wantFail != "" && (fail == nil || !strings.Contains(fail.message, tc.wantFail) || fail.reason != v1alpha1.ReasonStagePodConfigError):
				t.Errorf("failure = %+v, want StagePodConfigError containing %q", fail, tc.wantFail)
			}
			if got := fmt.Sprint(wait); tc.wantWait != "" && (wait == nil || !strings.Contains(got, tc.wantWait)) || tc.wantWait == "" && wait != nil {
				t.Errorf("wait = %v, want %q", wait, tc.wantWait)
			}
			if retryIn != tc.wantRetryIn {
				t.Errorf("retryIn = %s, want %s", retryIn, tc.wantRetryIn)
			}
		})
	}
}

func TestRefusedChild(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "PersistentVolumeClaim"}, "x-workspace",
		field.ErrorList{field.Invalid(field.NewPath("spec", "resources", "requests", "storage"), "0", "must be greater than zero")})
	cases := []struct {
		name string
		err  error
		want string
	}{
		{name: "invalid child", err: fmt.Errorf("applying PersistentVolumeClaim x-workspace: %w", invalid), want: "must be greater than zero"},
		{name: "forbidden by a limit range", err: apierrors.NewForbidden(gr, "x-train-0-abc", errors.New("maximum memory usage per Container is 1Gi, but limit is 4Gi")),
			want: "maximum memory usage per Container is 1Gi"},
		{name: "forbidden by the operator's RBAC is not the spec's fault",
			err: apierrors.NewForbidden(gr, "", errors.New(`User "system:serviceaccount:distillery-system:x" cannot create resource "pods"`))},
		{name: "a conflict", err: apierrors.NewConflict(gr, "x", errors.New("the object has been modified"))},
		{name: "not an API error", err: errors.New("boom")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := refusedChild(tc.err)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("refusedChild = %q, want containing %q", got, tc.want)
			}
		})
	}
}
