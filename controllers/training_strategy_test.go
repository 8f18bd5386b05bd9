package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/internal/contract"
)

// spec.training.strategy, lora, activationCheckpointing, cudaGraphs and compile through the real API server (its defaults
// included) into train.json, and the training pods that read it.

// renderedTrainConfig waits for the job's ConfigMap and decodes its train.json strictly.
func renderedTrainConfig(t *testing.T, ns, djName string) contract.TrainConfig {
	t.Helper()
	var cfg contract.TrainConfig
	eventually(t, "train.json in the job's ConfigMap", func() error {
		var cm corev1.ConfigMap
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: djName + "-config"}, &cm); err != nil {
			return err
		}
		if cm.Data[contract.TrainConfigKey(singleRun)] == "" {
			return fmt.Errorf("no %s in %s", contract.TrainConfigKey(singleRun), cm.Name)
		}
		decodeStrict(t, []byte(cm.Data[contract.TrainConfigKey(singleRun)]), &cfg)
		return nil
	})
	return cfg
}

func TestTrainingStrategyAndLoRAReachTrainJSONAndPods(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name         string
		job          *v1alpha1.DistillationJob
		wantStrategy string
		wantLoRA     *contract.LoRA
		wantCkpt     bool
		wantTorchrun bool
		wantGraphs   string // train.json's cudaGraphs; "" means auto
		wantCompile  bool
	}{
		{name: "defaults", job: utiltesting.MakeJob("plain", ns).Obj(), wantStrategy: contract.StrategyDDP},
		{name: "cuda graphs off", job: func() *v1alpha1.DistillationJob {
			dj := utiltesting.MakeJob("eager", ns).Obj()
			dj.Spec.Training.CUDAGraphs = v1alpha1.CUDAGraphsOff
			return dj
		}(), wantStrategy: contract.StrategyDDP, wantGraphs: contract.CUDAGraphsOff},
		{name: "compiled blocks", job: func() *v1alpha1.DistillationJob {
			dj := utiltesting.MakeJob("compiled", ns).Obj()
			dj.Spec.Training.Compile = true
			return dj
		}(), wantStrategy: contract.StrategyDDP, wantCompile: true},
		{name: "fsdp on two gpus with activation checkpointing", job: func() *v1alpha1.DistillationJob {
			dj := utiltesting.MakeJob("fsdp", ns).GPUs(2).Strategy(v1alpha1.TrainingStrategyFSDP).Obj()
			dj.Spec.Training.ActivationCheckpointing = true
			return dj
		}(), wantStrategy: contract.StrategyFSDP, wantCkpt: true, wantTorchrun: true},
		// only targetModules set: rank, alpha and dropout come from the schema's defaults
		{name: "lora with schema defaults", job: utiltesting.MakeJob("lora", ns).
			LoRA(v1alpha1.LoRASpec{TargetModules: []string{"q", "v"}}).Obj(),
			wantStrategy: contract.StrategyDDP, wantLoRA: &contract.LoRA{Rank: 16, Alpha: 32, Dropout: 0.05, TargetModules: []string{"q", "v"}}},
		{name: "lora set in full", job: utiltesting.MakeJob("lora8", ns).
			LoRA(v1alpha1.LoRASpec{Rank: 8, Alpha: "16", Dropout: "0"}).Obj(),
			wantStrategy: contract.StrategyDDP, wantLoRA: &contract.LoRA{Rank: 8, Alpha: 16, Dropout: 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dj := createJob(t, tc.job)
			cfg := renderedTrainConfig(t, ns, dj.Name)
			tr := cfg.Training
			if tr.Strategy != tc.wantStrategy || tr.ActivationCheckpointing != tc.wantCkpt || tr.Compile != tc.wantCompile {
				t.Errorf("train.json training: strategy %q, activationCheckpointing %v, compile %v", tr.Strategy,
					tr.ActivationCheckpointing, tr.Compile)
			}
			if want := cmp.Or(tc.wantGraphs, contract.CUDAGraphsAuto); tr.CUDAGraphs != want {
				t.Errorf("train.json training.cudaGraphs %q, want %q", tr.CUDAGraphs, want)
			}
			switch {
			case tc.wantLoRA == nil && tr.LoRA != nil:
				t.Errorf("train.json training.lora = %+v, want none", *tr.LoRA)
			case tc.wantLoRA != nil && (tr.LoRA == nil || tr.LoRA.Rank != tc.wantLoRA.Rank || tr.LoRA.Alpha != tc.wantLoRA.Alpha ||
				tr.LoRA.Dropout != tc.wantLoRA.Dropout || !slices.Equal(tr.LoRA.TargetModules, tc.wantLoRA.TargetModules)):
				t.Errorf("train.json training.lora = %+v, want %+v", tr.LoRA, *tc.wantLoRA)
			}

			// the training pods mount that ConfigMap and run the trainer on it (torchrun for several GPUs)
			finishShards(t, ns, dj.Name, annotateMsg(t, contract.AnnotateResult{Shard: 0, Total: 10, OK: 10}))
			tj := waitForStageJob(t, ns, dj.Name, StageTraining)
			pod := tj.Spec.Template.Spec
			c := pod.Containers[0]
			if (c.Command[0] == "torchrun") != tc.wantTorchrun || !slices.Contains(c.Command, configDir+"/"+contract.TrainConfigKey(singleRun)) {
				t.Errorf("trainer command = %v", c.Command)
			}
			mounted := false
			for _, v := range pod.Volumes {
				if v.ConfigMap != nil && v.ConfigMap.Name == dj.Name+"-config" {
					mounted = slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
						return m.Name == v.Name && m.MountPath == configDir
					})
				}
			}
			if !mounted {
				t.Errorf("the trainer does not mount %s-config at %s: volumes %v, mounts %v", dj.Name, configDir, pod.Volumes, c.VolumeMounts)
			}
		})
	}
}
