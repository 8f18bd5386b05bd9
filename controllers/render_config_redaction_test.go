package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

// A key pasted into spec.teacher.endpoint (refused at admission; an object admitted before that rule may
// still carry one) is never copied into the config ConfigMap, a condition or the event made from it.
func TestAKeyInTheEndpointIsNeverCopied(t *testing.T) {
	const userKey, queryKey = "sk-user-5d2a9c", "sk-query-8e1f07"
	endpoint := "https://apikey:" + userKey + "@api.example.com/v1?api_key=" + queryKey
	dj := utiltesting.MakeJob("dj", "ns").Endpoint(endpoint).Obj()

	cm := stageConfigMap(dj, InlineExamples(dj))
	for key, data := range cm.Data {
		for _, secret := range []string{userKey, queryKey} {
			if strings.Contains(data, secret) {
				t.Errorf("ConfigMap key %s carries %s:\n%s", key, secret, data)
			}
		}
	}
	if got := renderAnnotateConfig(dj, nil).Teacher.Endpoint; got != "https://redacted@api.example.com/v1?redacted" {
		t.Errorf("rendered endpoint = %q", got)
	}

	markFailed(dj, v1alpha1.ReasonTeacherUnreachable, "shard 0: teacher "+endpoint+` unreachable: Post "https://apikey:***@api.example.com/v1?api_key=`+queryKey+`/chat/completions": refused`, time.Now())
	for _, c := range dj.Status.Conditions {
		if strings.Contains(c.Message, userKey) || strings.Contains(c.Message, queryKey) {
			t.Errorf("condition %s carries a key: %q", c.Type, c.Message)
		}
	}
	if c := findCondition(dj, v1alpha1.ConditionFailed); c == nil || !strings.Contains(c.Message, "api.example.com/v1") {
		t.Errorf("Failed condition = %+v, want the redacted endpoint named", c)
	}
}

func TestAnEndpointWithoutSecretsIsRenderedAsWritten(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").Obj()
	if got := renderAnnotateConfig(dj, nil).Teacher.Endpoint; got != utiltesting.TeacherEndpoint {
		t.Errorf("rendered endpoint = %q, want %q", got, utiltesting.TeacherEndpoint)
	}
}
