// Command manager is the Distillery operator: it reconciles DistillationJobs and StudentModels.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	"github.com/distillery-dev/distillery/controllers"
)

// options are the operator's command-line flags.
type options struct {
	cfg                    controllers.Config
	metricsAddr, probeAddr string
	leaderElect            bool
	concurrency            int
	// watchNamespaces limits the operator to these namespaces (--watch-namespaces); empty: all.
	watchNamespaces []string
	// kubeconfig is the cluster to talk to (--kubeconfig); empty: $KUBECONFIG, in-cluster, ~/.kube/config.
	kubeconfig string
	zap        zap.Options
}

func parseFlags(args []string) (options, error) {
	var o options
	var allowedImages, watchNamespaces string
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&o.cfg.AnnotatorImage, "annotator-image", "distillery/operator:dev", "image that runs annotation pods (holds /annotator)")
	fs.StringVar(&o.cfg.TrainerImage, "trainer-image", "distillery/student:dev", "image of the student runtime (training pods and servers)")
	fs.StringVar(&allowedImages, "allowed-image-prefixes", "", "comma-separated prefixes that spec.annotation.image, spec.training.image and spec.serving.image must start with, compared as written (end each with '/'); empty allows any image")
	fs.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces to reconcile (a namespace-scoped install, config/namespaced); empty watches all")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles")
	fs.IntVar(&o.concurrency, "concurrency", 8, "reconciles run in parallel per controller")
	fs.DurationVar(&o.cfg.PodStartGrace, "pod-start-grace", controllers.DefaultPodStartGrace,
		"how long a stage pod may wait on an image pull, a missing Secret or a volume that does not mount before its stage fails")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to reconcile; empty uses $KUBECONFIG, the in-cluster config or ~/.kube/config")
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.cfg.AllowedImagePrefixes = commaList(allowedImages)
	o.watchNamespaces = commaList(watchNamespaces)
	return o, nil
}

// commaList reads a comma-separated flag, dropping blanks.
func commaList(flag string) []string {
	var out []string
	for _, p := range strings.Split(flag, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")
	rc, err := clusterConfig(o.kubeconfig)
	if err != nil {
		log.Error(err, "loading the cluster's config")
		os.Exit(1)
	}
	mgr, err := newManager(rc, o)
	if err != nil {
		log.Error(err, "creating manager")
		os.Exit(1)
	}
	log.Info("starting", "annotatorImage", o.cfg.AnnotatorImage, "trainerImage", o.cfg.TrainerImage,
		"allowedImagePrefixes", o.cfg.AllowedImagePrefixes, "watchNamespaces", o.watchNamespaces)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "running manager")
		os.Exit(1)
	}
}

// clusterConfig is the cluster's config from --kubeconfig, or controller-runtime's usual lookup.
func clusterConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

// newManager builds the manager with both controllers and its health checks.
func newManager(rc *rest.Config, o options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                 newScheme(),
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       "distillery-operator.distillery.dev",
		// Hand the lease over at shutdown, so a rolling update does not wait out its expiry.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions(o.watchNamespaces),
	})
	if err != nil {
		return nil, err
	}
	if err := (&controllers.DistillationJobReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Config: o.cfg, Clock: clock.RealClock{},
		Recorder: mgr.GetEventRecorderFor("distillationjob-controller"),
	}).SetupWithManager(mgr, o.concurrency); err != nil {
		return nil, fmt.Errorf("setting up the DistillationJob controller: %w", err)
	}
	if err := (&controllers.StudentModelReconciler{
		Client: mgr.GetClient(), Config: o.cfg, Recorder: mgr.GetEventRecorderFor("studentmodel-controller"),
	}).SetupWithManager(mgr, o.concurrency); err != nil {
		return nil, fmt.Errorf("setting up the StudentModel controller: %w", err)
	}
	_ = mgr.AddHealthzCheck("healthz", healthz.Ping)
	// Ready once the informer caches are synced: a pass that ran earlier would see no children.
	_ = mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches are not synced yet")
		}
		return nil
	})
	return mgr, nil
}

// cacheOptions are the controllers' cache settings, limited to the watched namespaces when there are
// some: the operator then lists, watches and reconciles nothing elsewhere, which is what lets a
// namespace-scoped install run on Roles alone.
func cacheOptions(namespaces []string) cache.Options {
	opts := controllers.CacheOptions()
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}
