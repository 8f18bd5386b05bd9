package controllers

import (
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

var fromMonitoring = networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
	MatchLabels: map[string]string{"kubernetes.io/metadata.name": "apps"}}}

func TestServingPolicies(t *testing.T) {
	cases := []struct {
		name                 string
		model                *utiltesting.ModelWrapper
		wantHPA, wantPDB     bool
		wantNetworkPolicy    bool
		wantMin, wantMaxRepl int32
	}{
		{name: "one replica: nothing", model: utiltesting.MakeModel("m", "ns").Replicas(1)},
		{name: "two replicas: a PDB", model: utiltesting.MakeModel("m", "ns").Replicas(2), wantPDB: true},
		{name: "stopped: nothing", model: utiltesting.MakeModel("m", "ns").Replicas(3).Autoscaling(2, 4).Stopped(true)},
		{name: "autoscaling from 1: an HPA, no PDB", model: utiltesting.MakeModel("m", "ns").Autoscaling(1, 4),
			wantHPA: true, wantMin: 1, wantMaxRepl: 4},
		{name: "autoscaling from 2: both", model: utiltesting.MakeModel("m", "ns").Autoscaling(2, 8),
			wantHPA: true, wantPDB: true, wantMin: 2, wantMaxRepl: 8},
		{name: "allowFrom: a NetworkPolicy", model: utiltesting.MakeModel("m", "ns").AllowFrom(fromMonitoring), wantNetworkPolicy: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sm := tc.model.UID("u").Obj()
			hpa, pdb, np := servingHPA(sm), servingPDB(sm), servingNetworkPolicy(sm)
			if (hpa != nil) != tc.wantHPA || (pdb != nil) != tc.wantPDB || (np != nil) != tc.wantNetworkPolicy {
				t.Fatalf("hpa %v, pdb %v, networkpolicy %v", hpa != nil, pdb != nil, np != nil)
			}
			if hpa != nil {
				ref := hpa.Spec.ScaleTargetRef
				if ref.Kind != "StudentModel" || ref.Name != "m" || ref.APIVersion != "distillery.dev/v1alpha1" {
					t.Errorf("the HPA scales %+v, want the StudentModel", ref)
				}
				if *hpa.Spec.MinReplicas != tc.wantMin || hpa.Spec.MaxReplicas != tc.wantMaxRepl {
					t.Errorf("min %d max %d", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
				}
				if u := hpa.Spec.Metrics[0].Resource.Target.AverageUtilization; u == nil || *u != 70 {
					t.Errorf("target = %v, want the default 70%%", u)
				}
				if !metav1.IsControlledBy(hpa, sm) {
					t.Errorf("hpa owners %v", hpa.OwnerReferences)
				}
			}
			if pdb != nil && (pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels[LabelModel] != "m") {
				t.Errorf("pdb = %+v", pdb.Spec)
			}
			if np != nil {
				rule := np.Spec.Ingress[0]
				if rule.Ports[0].Port.IntValue() != studentPort || len(rule.From) != 1 || rule.From[0].NamespaceSelector == nil {
					t.Errorf("ingress = %+v", rule)
				}
				if np.Spec.PodSelector.MatchLabels[LabelModel] != "m" {
					t.Errorf("pod selector = %v", np.Spec.PodSelector)
				}
			}
		})
	}
}

func TestServingDeploymentTurnsTheCompiledDecoderOffOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		mode v1alpha1.DecoderCompileMode
		want bool // --compile-decoder off in the command
	}{{"", false}, {v1alpha1.DecoderCompileAuto, false}, {v1alpha1.DecoderCompileOff, true}} {
		d := servingDeployment(utiltesting.MakeModel("m", "ns").CompileDecoder(tc.mode).Obj(), testImages)
		cmd := d.Spec.Template.Spec.Containers[0].Command
		i := slices.Index(cmd, "--compile-decoder")
		if (i >= 0) != tc.want || (i >= 0 && cmd[i+1] != "off") {
			t.Errorf("compileDecoder %q: command %v, want --compile-decoder off: %v", tc.mode, cmd, tc.want)
		}
	}
}

func TestServingDeploymentPassesTheModelNameTheTokenAndDrains(t *testing.T) {
	sm := utiltesting.MakeModel("anli", "ns").UID("u").Auth("student-key", "token").Obj()
	d := servingDeployment(sm, testImages)
	c := d.Spec.Template.Spec.Containers[0]
	if i := slices.Index(c.Command, "--served-model-name"); i < 0 || c.Command[i+1] != "anli" {
		t.Errorf("command = %v, want --served-model-name anli", c.Command)
	}
	var found bool
	for _, e := range c.Env {
		if e.Name == studentAPIKeyEnv {
			found = e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name == "student-key" && e.ValueFrom.SecretKeyRef.Key == "token"
		}
	}
	if !found {
		t.Errorf("env = %+v, want %s from secret student-key/token", c.Env, studentAPIKeyEnv)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("rolling update = %+v, want a surge before any pod goes", ru)
	}
	if g := ptr.Deref(d.Spec.Template.Spec.TerminationGracePeriodSeconds, 30); g < 25 {
		t.Errorf("grace period %d s is shorter than the server's drain (5 s) plus its graceful timeout (20 s)", g)
	}
	if servingSelector(sm) != "distillery.dev/stage=serve,distillery.dev/studentmodel=anli" {
		t.Errorf("selector = %q", servingSelector(sm))
	}
}
