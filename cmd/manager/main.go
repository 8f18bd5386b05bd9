// Command manager is the Distillery operator: it reconciles DistillationJobs and StudentModels.
package main

import (
	"errors"
	"flag"
	"net/http"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
)

func main() {
	var (
		cfg                    controllers.Config
		metricsAddr, probeAddr string
		leaderElect            bool
		concurrency            int
	)
	flag.StringVar(&cfg.AnnotatorImage, "annotator-image", "distillery/operator:dev", "image that runs annotation pods (holds /annotator)")
	flag.StringVar(&cfg.TrainerImage, "trainer-image", "distillery/student:dev", "image of the student runtime (training pods and servers)")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles")
	flag.IntVar(&concurrency, "concurrency", 8, "reconciles run in parallel per controller")
	flag.DurationVar(&cfg.PodStartGrace, "pod-start-grace", controllers.DefaultPodStartGrace,
		"how long a stage pod may wait on an image pull, a missing Secret or a volume that does not mount before its stage fails")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 newScheme(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "distillery-operator.distillery.dev",
		// Hand the lease over at shutdown, so a rolling update does not wait out its expiry.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(),
	})
	if err != nil {
		log.Error(err, "creating manager")
		os.Exit(1)
	}
	if err := (&controllers.DistillationJobReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Config: cfg, Clock: clock.RealClock{},
		Recorder: mgr.GetEventRecorderFor("distillationjob-controller"),
	}).SetupWithManager(mgr, concurrency); err != nil {
		log.Error(err, "setting up the DistillationJob controller")
		os.Exit(1)
	}
	if err := (&controllers.StudentModelReconciler{
		Client: mgr.GetClient(), Config: cfg, Recorder: mgr.GetEventRecorderFor("studentmodel-controller"),
	}).SetupWithManager(mgr, concurrency); err != nil {
		log.Error(err, "setting up the StudentModel controller")
		os.Exit(1)
	}
	_ = mgr.AddHealthzCheck("healthz", healthz.Ping)
	// Ready once the informer caches are synced: a pass that ran earlier would see no children.
	_ = mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches are not synced yet")
		}
		return nil
	})
	log.Info("starting", "annotatorImage", cfg.AnnotatorImage, "trainerImage", cfg.TrainerImage)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "running manager")
		os.Exit(1)
	}
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}
