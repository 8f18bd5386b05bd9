package controllers

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// Unit tests of the pure builders: what the operator wants to exist for a given spec.

func envByName(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func mountByName(c corev1.Container) map[string]corev1.VolumeMount {
	out := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		out[m.Name] = m
	}
	return out
}

func volumeByName(spec corev1.PodSpec) map[string]corev1.Volume {
	out := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		out[v.Name] = v
	}
	return out
}

// assertRestricted checks the "restricted" Pod Security Standard and the non-root user.
func assertRestricted(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	ps := spec.SecurityContext
	if ps == nil || !ptr.Deref(ps.RunAsNonRoot, false) || ptr.Deref(ps.RunAsUser, 0) == 0 ||
		ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context is not restricted/non-root: %+v", ps)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("container %s security context is not restricted: %+v", c.Name, sc)
		}
	}
}

func TestAnnotationJob(t *testing.T) {
	cases := []struct {
		name        string
		dj          *v1alpha1.DistillationJob
		wantShards  int32
		wantSuspend *bool
		wantQueue   string
		wantImage   string
	}{
		{name: "defaults", dj: utiltesting.MakeJob("dj", "ns").UID("u1").Obj(), wantShards: 1, wantSuspend: ptr.To(false), wantImage: "annotator:test"},
		{name: "three shards, own image", dj: func() *v1alpha1.DistillationJob {
			dj := utiltesting.MakeJob("dj", "ns").UID("u1").Shards(3).Obj()
			dj.Spec.Annotation.Image = "my/annotator:1"
			return dj
		}(), wantShards: 3, wantSuspend: ptr.To(false), wantImage: "my/annotator:1"},
		{name: "suspended", dj: utiltesting.MakeJob("dj", "ns").UID("u1").Suspend(true).Obj(), wantShards: 1, wantSuspend: ptr.To(true), wantImage: "annotator:test"},
		{name: "queued by Kueue: suspend left to Kueue", dj: utiltesting.MakeJob("dj", "ns").UID("u1").Label(LabelKueueQueue, "q").Obj(),
			wantShards: 1, wantSuspend: nil, wantQueue: "q", wantImage: "annotator:test"},
		// Suspending a queued job deactivates its Kueue Workload (suspend.go): writing the Job's suspend
		// would fight Kueue, which unsuspends admitted Jobs.
		{name: "queued and suspended: still left to Kueue", dj: utiltesting.MakeJob("dj", "ns").UID("u1").Label(LabelKueueQueue, "q").Suspend(true).Obj(),
			wantShards: 1, wantSuspend: nil, wantQueue: "q", wantImage: "annotator:test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := annotationJob(tc.dj, testImages)
			if ptr.Deref(j.Spec.CompletionMode, "") != batchv1.IndexedCompletion {
				t.Errorf("completionMode = %v, want Indexed", j.Spec.CompletionMode)
			}
			if *j.Spec.Completions != tc.wantShards || *j.Spec.Parallelism != tc.wantShards {
				t.Errorf("completions %d, parallelism %d, want %d", *j.Spec.Completions, *j.Spec.Parallelism, tc.wantShards)
			}
			if (j.Spec.Suspend == nil) != (tc.wantSuspend == nil) || (j.Spec.Suspend != nil && *j.Spec.Suspend != *tc.wantSuspend) {
				t.Errorf("suspend = %v, want %v", j.Spec.Suspend, tc.wantSuspend)
			}
			if j.Labels[LabelKueueQueue] != tc.wantQueue {
				t.Errorf("kueue label = %q, want %q", j.Labels[LabelKueueQueue], tc.wantQueue)
			}
			if j.Labels[LabelJob] != "dj" || j.Labels[LabelStage] != StageAnnotation || j.Labels[LabelManagedBy] != ManagedBy {
				t.Errorf("labels = %v", j.Labels)
			}
			if tl := j.Spec.Template.Labels; tl[LabelJob] != "dj" || tl[LabelManagedBy] != ManagedBy {
				t.Errorf("pod labels = %v (the operator's cache sees only managed pods)", tl)
			}
			if !metav1.IsControlledBy(j, tc.dj) {
				t.Errorf("owner references = %v", j.OwnerReferences)
			}
			c := j.Spec.Template.Spec.Containers[0]
			if c.Image != tc.wantImage {
				t.Errorf("image = %q, want %q", c.Image, tc.wantImage)
			}
			if strings.Join(c.Command, " ") != "/annotator --config /etc/distillery/annotate.json" {
				t.Errorf("command = %v", c.Command)
			}
			if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
				t.Errorf("terminationMessagePolicy = %q", c.TerminationMessagePolicy)
			}
			mounts, vols := mountByName(c), volumeByName(j.Spec.Template.Spec)
			for name, want := range map[string]corev1.VolumeMount{
				volConfig:    {MountPath: "/etc/distillery", ReadOnly: true},
				volWorkspace: {MountPath: "/workspace"},
				volDataset:   {MountPath: "/data/train", ReadOnly: true},
				"tmp":        {MountPath: "/tmp"},
			} {
				if m, ok := mounts[name]; !ok || m.MountPath != want.MountPath || m.ReadOnly != want.ReadOnly {
					t.Errorf("mount %s = %+v, want %+v", name, m, want)
				}
			}
			if v := vols[volConfig]; v.ConfigMap == nil || v.ConfigMap.Name != "dj-config" {
				t.Errorf("config volume = %+v", v)
			}
			if v := vols[volWorkspace]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "dj-workspace" {
				t.Errorf("workspace volume = %+v", v)
			}
			if v := vols[volDataset]; v.ConfigMap == nil || v.ConfigMap.Name != "dataset" || v.ConfigMap.Items[0].Path != "train.jsonl" {
				t.Errorf("dataset volume = %+v", v)
			}
			if _, ok := envByName(c)[teacherAPIKeyEnv]; ok {
				t.Errorf("a job without apiKeySecretRef gets %s", teacherAPIKeyEnv)
			}
			assertRestricted(t, j.Spec.Template.Spec)
			if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever || j.Spec.Template.Spec.ServiceAccountName != "dj-stage" {
				t.Errorf("restartPolicy %q, serviceAccount %q", j.Spec.Template.Spec.RestartPolicy, j.Spec.Template.Spec.ServiceAccountName)
			}
		})
	}
}

func TestAnnotationJobTakesTheAPIKeyFromTheSecret(t *testing.T) {
	j := annotationJob(utiltesting.MakeJob("dj", "ns").APIKey("teacher", "token").Obj(), testImages)
	e, ok := envByName(j.Spec.Template.Spec.Containers[0])[teacherAPIKeyEnv]
	if !ok {
		t.Fatalf("no %s env var", teacherAPIKeyEnv)
	}
	if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != "teacher" || e.ValueFrom.SecretKeyRef.Key != "token" {
		t.Errorf("%s = %+v, want a secretKeyRef and no literal value", teacherAPIKeyEnv, e)
	}
}

func TestAnnotationJobMountsADatasetPVCAtItsRoot(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").DatasetPVC("data", "anli/train.jsonl").Obj()
	j := annotationJob(dj, testImages)
	v := volumeByName(j.Spec.Template.Spec)[volDataset]
	if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "data" || !v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("dataset volume = %+v", v)
	}
	if got := renderAnnotateConfig(dj, nil).Dataset.Path; got != "/data/train/anli/train.jsonl" {
		t.Errorf("dataset path = %q", got)
	}
}

func TestTheAnnotatorGetsTheSampleAndTheAnswerLimit(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").Obj()
	dj.Spec.Dataset.MaxExamples, dj.Spec.Training.Seed = ptr.To[int32](500), 42
	if d := renderAnnotateConfig(dj, nil).Dataset; d.MaxExamples != 500 || d.Seed != 42 {
		t.Errorf("annotate.json dataset = %+v, want maxExamples 500 and seed 42", d)
	}
	dj.Spec.Teacher.MaxTokens = 1000
	if got := renderAnnotateConfig(dj, nil).Teacher.MaxResponseBytes; got != 32<<10+64*1000 {
		t.Errorf("teacher.maxResponseBytes = %d, want 32 KiB + 64 bytes per token", got)
	}
	b, _ := json.Marshal(renderTrainConfig(dj, nil, trainingPoints(dj)[0]))
	if strings.Contains(string(b), "maxExamples") {
		t.Errorf("train.json carries maxExamples, which the annotator's sample already applied: %s", b)
	}
}

func TestTrainingJob(t *testing.T) {
	cases := []struct {
		name          string
		dj            *v1alpha1.DistillationJob
		wantGPUs      int64 // 0: no nvidia.com/gpu at all
		wantIndexed   bool
		wantCommand   string
		wantPET       map[string]string // literal PET_* values; nil: no PET_* variables
		wantService   bool
		wantEvalMount bool
	}{
		{name: "one GPU worker", dj: utiltesting.MakeJob("dj", "ns").Obj(), wantGPUs: 1, wantCommand: "python3"},
		{name: "CPU", dj: utiltesting.MakeJob("dj", "ns").GPUs(0).Obj(), wantCommand: "python3"},
		{name: "one worker, four GPUs", dj: utiltesting.MakeJob("dj", "ns").GPUs(4).Obj(), wantGPUs: 4, wantCommand: "torchrun",
			wantPET: map[string]string{"PET_NNODES": "1", "PET_NPROC_PER_NODE": "4"}},
		{name: "three workers, two GPUs each", dj: utiltesting.MakeJob("dj", "ns").Workers(3).GPUs(2).Obj(), wantGPUs: 2, wantIndexed: true,
			wantCommand: "torchrun", wantService: true,
			wantPET: map[string]string{"PET_NNODES": "3", "PET_NPROC_PER_NODE": "2", "PET_MASTER_ADDR": "dj-train-0.dj-train", "PET_MASTER_PORT": "29500"}},
		{name: "two CPU workers", dj: utiltesting.MakeJob("dj", "ns").Workers(2).GPUs(0).Obj(), wantIndexed: true,
			wantCommand: "torchrun", wantService: true,
			wantPET: map[string]string{"PET_NNODES": "2", "PET_NPROC_PER_NODE": "1", "PET_MASTER_ADDR": "dj-train-0.dj-train", "PET_MASTER_PORT": "29500"}},
		{name: "separate eval split", dj: utiltesting.MakeJob("dj", "ns").EvalConfigMap("eval", "eval.jsonl").Obj(), wantGPUs: 1,
			wantCommand: "python3", wantEvalMount: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := trainingJob(tc.dj, testImages, trainingPoints(tc.dj)[0])
			spec := j.Spec.Template.Spec
			c := spec.Containers[0]
			if c.Image != "student:test" || c.Command[0] != tc.wantCommand {
				t.Errorf("image %q, command %v", c.Image, c.Command)
			}
			gpu, hasGPU := c.Resources.Limits[resourceNvidiaGPU]
			if tc.wantGPUs == 0 && hasGPU {
				t.Errorf("a CPU job asks for %s GPUs", gpu.String())
			}
			if tc.wantGPUs > 0 && gpu.Value() != tc.wantGPUs {
				t.Errorf("nvidia.com/gpu limit = %s, want %d", gpu.String(), tc.wantGPUs)
			}
			workers := tc.dj.Spec.Training.Workers
			if *j.Spec.Completions != workers || *j.Spec.Parallelism != workers {
				t.Errorf("completions %d, parallelism %d, want %d", *j.Spec.Completions, *j.Spec.Parallelism, workers)
			}
			indexed := ptr.Deref(j.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
			if indexed != tc.wantIndexed || (tc.wantIndexed && spec.Subdomain != "dj-train") {
				t.Errorf("indexed %v subdomain %q, want indexed %v", indexed, spec.Subdomain, tc.wantIndexed)
			}
			env := envByName(c)
			for k, v := range env {
				if strings.HasPrefix(k, "PET_") && tc.wantPET == nil {
					t.Errorf("single-process training gets %s=%s", k, v.Value)
				}
			}
			for k, want := range tc.wantPET {
				if env[k].Value != want {
					t.Errorf("%s = %q, want %q", k, env[k].Value, want)
				}
			}
			if tc.wantIndexed {
				rank := env["PET_NODE_RANK"]
				if rank.ValueFrom == nil || rank.ValueFrom.FieldRef == nil ||
					rank.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
					t.Errorf("PET_NODE_RANK = %+v, want the completion index", rank)
				}
			}
			svc := trainingService(tc.dj, trainingPoints(tc.dj)[0])
			if (svc != nil) != tc.wantService {
				t.Fatalf("training service = %v, want one: %v", svc, tc.wantService)
			}
			if svc != nil && (svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Selector[LabelStage] != StageTraining || !svc.Spec.PublishNotReadyAddresses) {
				t.Errorf("training service is not headless over the training pods: %+v", svc.Spec)
			}
			if _, ok := mountByName(c)[volEval]; ok != tc.wantEvalMount {
				t.Errorf("eval mounted: %v, want %v", ok, tc.wantEvalMount)
			}
			assertRestricted(t, spec)
		})
	}
}

func TestTrainingResourcesKeepTheUsersAndSetGPUs(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").GPUs(2).TrainingResources(corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Gi")},
	}).Obj()
	r := trainingResources(dj)
	lim, req := r.Limits[resourceNvidiaGPU], r.Requests[resourceNvidiaGPU]
	if r.Requests.Memory().String() != "16Gi" || lim.Value() != 2 || req.Value() != 2 {
		t.Errorf("resources = %+v", r)
	}
	if dj.Spec.Training.Resources.Limits != nil {
		t.Errorf("trainingResources changed the spec: %+v", dj.Spec.Training.Resources)
	}
}

func TestTrainingJobMountsBaseModelFromPVC(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").BaseModel("").BaseModelFrom("models", "t5-base").Obj()
	j := trainingJob(dj, testImages, trainingPoints(dj)[0])
	m, ok := mountByName(j.Spec.Template.Spec.Containers[0])[volBaseModel]
	if !ok || !m.ReadOnly || m.MountPath != "/models/base" {
		t.Errorf("base model mount = %+v", m)
	}
	if got := renderTrainConfig(dj, nil, trainingPoints(dj)[0]).Student.BaseModel; got != "/models/base/t5-base" {
		t.Errorf("train.json student.baseModel = %q", got)
	}
}

// decodeStrict decodes JSON into v, rejecting fields the contract type does not have.
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %T: %v\n%s", v, err, data)
	}
}

// objectKeys lists "a.b" paths of every object key (not into arrays).
func objectKeys(prefix string, v any, out map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, child := range m {
		out[prefix+k] = true
		objectKeys(prefix+k+".", child, out)
	}
}

func keysOf(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	objectKeys("", v, out)
	return out
}

func TestStageConfigMapMatchesTheContractVectors(t *testing.T) {
	dj := utiltesting.MakeJob("anli-t5", "ns").UID("u1").Shards(8).APIKey("k", "key").EvalConfigMap("eval", "eval.jsonl").Obj()
	dj.Spec.Dataset.LabelField = "label"
	dj.Spec.Training.LoRA = &v1alpha1.LoRASpec{Rank: 16, Alpha: "32", Dropout: "0.05", TargetModules: []string{"q", "v"}}
	cm := stageConfigMap(dj, InlineExamples(dj))
	if !metav1.IsControlledBy(cm, dj) || cm.Name != "anli-t5-config" {
		t.Errorf("config map %s owned by %v", cm.Name, cm.OwnerReferences)
	}
	// Keys a vector may leave out because they are optional (omitempty) in the contract.
	optional := map[string]bool{"dataset.maxExamples": true, "dataset.seed": true, "point": true, "point.index": true, "point.total": true,
		"budget": true, "budget.maxTokens": true, "budget.maxRequests": true, "budget.maxCost": true, "budget.promptPricePerMillion": true,
		"budget.completionPricePerMillion": true, "budget.ledgerConfigMap": true}
	for _, tc := range []struct {
		key, vector string
		into        any
	}{
		{annotateConfigKey, "annotate.json", &contract.AnnotateConfig{}},
		{contract.TrainConfigKey(singleRun), "train.json", &contract.TrainConfig{}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			rendered := []byte(cm.Data[tc.key])
			decodeStrict(t, rendered, tc.into)
			vector, err := os.ReadFile(filepath.Join("..", "testdata", "contract", tc.vector))
			if err != nil {
				t.Fatal(err)
			}
			decodeStrict(t, vector, tc.into)
			got, want := keysOf(t, rendered), keysOf(t, vector)
			var missing, extra []string
			for k := range want {
				if !got[k] && !optional[k] {
					missing = append(missing, k)
				}
			}
			for k := range got {
				if !want[k] && !optional[k] {
					extra = append(extra, k)
				}
			}
			sort.Strings(missing)
			sort.Strings(extra)
			if len(missing)+len(extra) > 0 {
				t.Errorf("%s differs in shape from testdata/contract/%s: missing %v, extra %v", tc.key, tc.vector, missing, extra)
			}
		})
	}
	var ac contract.AnnotateConfig
	decodeStrict(t, []byte(cm.Data[annotateConfigKey]), &ac)
	if ac.Shards != 8 || ac.Teacher.APIKeyEnv != teacherAPIKeyEnv || ac.Task.Type != contract.TaskClassification ||
		ac.Teacher.Endpoint != utiltesting.TeacherEndpoint || len(ac.Task.Examples) != 1 || ac.Dataset.LabelField != "label" {
		t.Errorf("annotate.json = %+v", ac)
	}
	var tcfg contract.TrainConfig
	decodeStrict(t, []byte(cm.Data[contract.TrainConfigKey(singleRun)]), &tcfg)
	if tcfg.Training.Mode != contract.ModeStepByStep || tcfg.Training.RationaleWeight != 1 || tcfg.Data.EvalPath != "/data/eval/eval.jsonl" ||
		tcfg.Provenance.PromptHash != contract.PromptHash(contractTask(dj, InlineExamples(dj))) || tcfg.Student.Architecture != contract.ArchitectureSeq2Seq ||
		tcfg.Training.Strategy != contract.StrategyDDP || tcfg.Training.LoRA == nil || tcfg.Training.LoRA.Alpha != 32 || tcfg.Training.LoRA.Dropout != 0.05 {
		t.Errorf("train.json = %+v", tcfg)
	}
}

func TestWorkspaceClaim(t *testing.T) {
	dj := utiltesting.MakeJob("dj", "ns").UID("job-uid").Obj()
	sm := utiltesting.MakeModel("dj", "ns").UID("model-uid").Obj()
	cases := []struct {
		name      string
		dj        *v1alpha1.DistillationJob
		model     *v1alpha1.StudentModel
		wantNil   bool
		wantOwner string
		wantSize  string
	}{
		{name: "owned by the job while it runs", dj: dj, wantOwner: "job-uid", wantSize: "10Gi"},
		{name: "owned by the StudentModel once it exists", dj: dj, model: sm, wantOwner: "model-uid", wantSize: "10Gi"},
		{name: "own size", dj: utiltesting.MakeJob("dj", "ns").UID("job-uid").StorageSize("50Gi").Obj(), wantOwner: "job-uid", wantSize: "50Gi"},
		{name: "existing claim: none made", dj: utiltesting.MakeJob("dj", "ns").ExistingClaim("mine").Obj(), wantNil: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pvc := workspaceClaim(tc.dj, tc.model)
			if (pvc == nil) != tc.wantNil {
				t.Fatalf("claim = %v, want nil: %v", pvc, tc.wantNil)
			}
			if pvc == nil {
				return
			}
			if len(pvc.OwnerReferences) != 1 || string(pvc.OwnerReferences[0].UID) != tc.wantOwner || !ptr.Deref(pvc.OwnerReferences[0].Controller, false) {
				t.Errorf("owners = %+v, want only %s", pvc.OwnerReferences, tc.wantOwner)
			}
			if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != tc.wantSize {
				t.Errorf("size = %s, want %s", got.String(), tc.wantSize)
			}
		})
	}
	// The owner switch must change the spec hash, or the operator would never re-apply the claim.
	if workspaceClaim(dj, nil).Annotations[AnnotationSpecHash] == workspaceClaim(dj, sm).Annotations[AnnotationSpecHash] {
		t.Errorf("the owner switch does not change the claim's spec hash")
	}
}

func TestStudentModelBuilder(t *testing.T) {
	cases := []struct {
		name        string
		dj          *v1alpha1.DistillationJob
		wantStopped bool
		wantBase    string
	}{
		{name: "serving", dj: utiltesting.MakeJob("anli", "ns").UID("u1").ServingReplicas(2).Obj(), wantBase: "google/t5-v1_1-small"},
		{name: "serving disabled: created stopped", dj: utiltesting.MakeJob("anli", "ns").UID("u1").ServingEnabled(false).Obj(), wantStopped: true, wantBase: "google/t5-v1_1-small"},
		{name: "base model from a PVC", dj: utiltesting.MakeJob("anli", "ns").UID("u1").BaseModel("").BaseModelFrom("models", "t5").Obj(), wantBase: "pvc/models/t5"},
		{name: "the serving template's compileDecoder", dj: func() *v1alpha1.DistillationJob {
			dj := utiltesting.MakeJob("anli", "ns").UID("u1").Obj()
			dj.Spec.Serving.CompileDecoder = v1alpha1.DecoderCompileOff
			return dj
		}(), wantBase: "google/t5-v1_1-small"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sm := studentModel(tc.dj, renderAnnotateConfig(tc.dj, InlineExamples(tc.dj)))
			if len(sm.OwnerReferences) != 0 {
				t.Errorf("the StudentModel is owned by %v; it must outlive the job", sm.OwnerReferences)
			}
			if sm.Labels[LabelJobUID] != "u1" || sm.Labels[LabelJob] != "anli" {
				t.Errorf("labels = %v", sm.Labels)
			}
			if sm.Spec.Artifact != (v1alpha1.VolumeFileRef{ClaimName: "anli-workspace", Path: "jobs/anli-u1/model"}) {
				t.Errorf("artifact = %+v", sm.Spec.Artifact)
			}
			if sm.Spec.Stopped != tc.wantStopped || sm.Spec.BaseModel != tc.wantBase {
				t.Errorf("stopped %v base %q", sm.Spec.Stopped, sm.Spec.BaseModel)
			}
			if ptr.Deref(sm.Spec.Serving.Replicas, 1) != ptr.Deref(tc.dj.Spec.Serving.Replicas, 1) {
				t.Errorf("replicas = %v", sm.Spec.Serving.Replicas)
			}
			if sm.Spec.Serving.CompileDecoder != tc.dj.Spec.Serving.CompileDecoder {
				t.Errorf("compileDecoder = %q, want the job's %q", sm.Spec.Serving.CompileDecoder, tc.dj.Spec.Serving.CompileDecoder)
			}
		})
	}
}

// The StudentModel's spec carries what only the job knows, from the snapshot, the annotators' summaries
// and the eval: nobody but the StudentModel controller writes its status.
func TestStudentModelCarriesProvenanceAndMetricsInItsSpec(t *testing.T) {
	dj := utiltesting.MakeJob("anli", "ns").UID("u1").Obj()
	dj.Spec.Teacher.Temperature, dj.Spec.Teacher.MaxTokens = "0.7", 96
	dj.Status.Annotation = &v1alpha1.AnnotationStatus{DatasetHash: "sha256:abc", Requests: 390, PromptTokens: 200000,
		CompletionTokens: 30000, Cost: "1.0500", CacheHits: 10, BudgetExceeded: true}
	dj.Status.Evaluation = &v1alpha1.EvaluationStatus{Accuracy: "0.8750", Examples: 400}
	snap := renderAnnotateConfig(dj, InlineExamples(dj))
	// The snapshot, not the spec, is the truth: a snapshot with another example gives another hash.
	snap.Task.Examples = append(snap.Task.Examples, contract.Example{Input: "i", Rationale: "r", Label: "no"})
	sm := studentModel(dj, snap)
	want := v1alpha1.ModelProvenance{
		Job: "anli", JobUID: "u1", TeacherModel: "teacher-70b", TeacherTemperature: "0.7", TeacherMaxTokens: 96,
		PromptHash: contract.PromptHash(snap.Task), Dataset: "configmap/dataset/train.jsonl", DatasetHash: "sha256:abc",
		Mode:         v1alpha1.TrainingModeStepByStep,
		TeacherSpend: &v1alpha1.TeacherSpend{Requests: 390, PromptTokens: 200000, CompletionTokens: 30000, Cost: "1.0500", CacheHits: 10, BudgetExceeded: true},
	}
	if sm.Spec.Provenance == nil || !equality.Semantic.DeepEqual(*sm.Spec.Provenance, want) {
		t.Errorf("provenance = %+v, want %+v", sm.Spec.Provenance, want)
	}
	if want.PromptHash == contract.PromptHash(contractTask(dj, InlineExamples(dj))) {
		t.Errorf("the prompt hash follows the spec, not the snapshot")
	}
	if m := sm.Spec.Metrics; m == nil || *m != (v1alpha1.ModelMetrics{Accuracy: "0.8750", EvalExamples: 400}) {
		t.Errorf("metrics = %+v", m)
	}

	// A Generation task's model carries its scores, not just the metric's name.
	dj.Status.Evaluation = &v1alpha1.EvaluationStatus{Metric: v1alpha1.MetricExactMatch, ExactMatch: "0.6000",
		TokenF1: "0.7500", Examples: 50, BestStep: 30}
	want2 := v1alpha1.ModelMetrics{Metric: v1alpha1.MetricExactMatch, ExactMatch: "0.6000", TokenF1: "0.7500",
		EvalExamples: 50, BestStep: 30}
	if m := studentModel(dj, snap).Spec.Metrics; m == nil || *m != want2 {
		t.Errorf("generation metrics = %+v, want %+v", m, want2)
	}
}

// Every job run has its own folder in the workspace, keyed by its UID; only the cache is shared.
func TestJobsSharingAClaimGetTheirOwnFolders(t *testing.T) {
	a := utiltesting.MakeJob("a", "ns").UID("uid-a").ExistingClaim("shared").Obj()
	b := utiltesting.MakeJob("b", "ns").UID("uid-b").ExistingClaim("shared").Obj()
	again := utiltesting.MakeJob("a", "ns").UID("uid-a2").ExistingClaim("shared").Obj()
	dirs := map[string]string{}
	for _, dj := range []*v1alpha1.DistillationJob{a, b, again} {
		ac, tc := renderAnnotateConfig(dj, nil), renderTrainConfig(dj, nil, trainingPoints(dj)[0])
		want := "/workspace/jobs/" + dj.Name + "-" + string(dj.UID)
		if ac.Output.JobDir != want || tc.Output.JobDir != want || ac.JobUID != string(dj.UID) || tc.JobUID != string(dj.UID) {
			t.Errorf("%s: job folders %s and %s, uids %s and %s; want %s", dj.Name, ac.Output.JobDir, tc.Output.JobDir, ac.JobUID, tc.JobUID, want)
		}
		for _, p := range []string{ac.Output.Dir, tc.Data.AnnotationsDir, tc.Output.CheckpointDir, tc.Output.ModelDir, tc.Output.MetricsPath} {
			if !strings.HasPrefix(p, want+"/") {
				t.Errorf("%s: %s is outside the job folder", dj.Name, p)
			}
		}
		if ac.Output.CacheDir != "/workspace/cache" {
			t.Errorf("%s: cache %s is not the shared one", dj.Name, ac.Output.CacheDir)
		}
		if other, ok := dirs[want]; ok {
			t.Errorf("%s and %s share the folder %s", dj.Name, other, want)
		}
		dirs[want] = dj.Name
		if sm := studentModel(dj, ac); "/workspace/"+sm.Spec.Artifact.Path != tc.Output.ModelDir || sm.Spec.Artifact.ClaimName != "shared" {
			t.Errorf("%s: the StudentModel serves %+v, the trainer writes %s", dj.Name, sm.Spec.Artifact, tc.Output.ModelDir)
		}
	}
}

func TestServingDeployment(t *testing.T) {
	cases := []struct {
		name         string
		sm           *v1alpha1.StudentModel
		wantReplicas int32
		wantImage    string
	}{
		{name: "serving", sm: utiltesting.MakeModel("m", "ns").UID("u").Replicas(3).Obj(), wantReplicas: 3, wantImage: "student:test"},
		{name: "stopped", sm: utiltesting.MakeModel("m", "ns").UID("u").Replicas(3).Stopped(true).Obj(), wantReplicas: 0, wantImage: "student:test"},
		{name: "own image", sm: utiltesting.MakeModel("m", "ns").UID("u").Image("my/server:1").Obj(), wantReplicas: 1, wantImage: "my/server:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := servingDeployment(tc.sm, testImages)
			if *d.Spec.Replicas != tc.wantReplicas {
				t.Errorf("replicas = %d, want %d", *d.Spec.Replicas, tc.wantReplicas)
			}
			if !metav1.IsControlledBy(d, tc.sm) || d.Name != "m-student" {
				t.Errorf("deployment %s owned by %v", d.Name, d.OwnerReferences)
			}
			spec := d.Spec.Template.Spec
			c := spec.Containers[0]
			if c.Image != tc.wantImage {
				t.Errorf("image = %q", c.Image)
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
				t.Errorf("readiness probe = %+v", p)
			}
			if m := mountByName(c)["model"]; !m.ReadOnly || m.MountPath != "/model" {
				t.Errorf("model mount = %+v", m)
			}
			if v := volumeByName(spec)["model"]; v.PersistentVolumeClaim == nil || !v.PersistentVolumeClaim.ReadOnly || v.PersistentVolumeClaim.ClaimName != "models" {
				t.Errorf("model volume = %+v", v)
			}
			if !strings.Contains(strings.Join(c.Command, " "), "--model /model/anli") {
				t.Errorf("command = %v", c.Command)
			}
			// torch.compile's cache goes to the writable /tmp (the root filesystem is read-only).
			if e := envByName(c)["TORCHINDUCTOR_CACHE_DIR"]; e.Value != "/tmp/torchinductor" || e.ValueFrom != nil {
				t.Errorf("TORCHINDUCTOR_CACHE_DIR = %+v, want /tmp/torchinductor", e)
			}
			if m := mountByName(c)["tmp"]; m.MountPath != "/tmp" || m.ReadOnly || volumeByName(spec)["tmp"].EmptyDir == nil {
				t.Errorf("tmp mount = %+v, volume %+v: want a writable emptyDir at /tmp", m, volumeByName(spec)["tmp"])
			}
			for k, v := range d.Spec.Selector.MatchLabels {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("selector %s=%s does not match the pod labels %v", k, v, d.Spec.Template.Labels)
				}
			}
			assertRestricted(t, spec)
			svc := servingService(tc.sm)
			if svc.Spec.Selector[LabelModel] != "m" || svc.Spec.Ports[0].Port != 8080 || !metav1.IsControlledBy(svc, tc.sm) {
				t.Errorf("service = %+v", svc)
			}
		})
	}
}

func TestStageRoleAllowsOnlyTheProgressAndReportConfigMaps(t *testing.T) {
	role := stageRole(utiltesting.MakeJob("dj", "ns").Obj())
	if len(role.Rules) != 1 {
		t.Fatalf("rules = %+v", role.Rules)
	}
	r := role.Rules[0]
	if strings.Join(r.Resources, ",") != "configmaps" || strings.Join(r.ResourceNames, ",") != "dj-progress,dj-report" || strings.Join(r.Verbs, ",") != "get,patch" {
		t.Errorf("rule = %+v", r)
	}
}
