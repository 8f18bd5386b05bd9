package cli

import (
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// jobsResource is the DistillationJob resource.
var jobsResource = schema.GroupVersionResource{Group: "distillery.dev", Version: "v1alpha1", Resource: "distillationjobs"}

// clusterFlags are kubectl's connection flags (--kubeconfig, --context, -n/--namespace, --server, ...),
// from client-go's clientcmd, the loader kubectl itself uses: the current kubeconfig and context unless
// told otherwise.
type clusterFlags struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides *clientcmd.ConfigOverrides
}

func newClusterFlags() *clusterFlags {
	return &clusterFlags{loading: clientcmd.NewDefaultClientConfigLoadingRules(), overrides: &clientcmd.ConfigOverrides{}}
}

// bind adds the flags to a command's flag set.
func (c *clusterFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.loading.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	clientcmd.BindOverrideFlags(c.overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
}

// clients connect to the cluster and say which namespace the command works in.
func (c *clusterFlags) clients() (dynamic.Interface, kubernetes.Interface, string, error) {
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(c.loading, c.overrides)
	rest, err := cfg.ClientConfig()
	if err != nil {
		return nil, nil, "", err
	}
	ns, _, err := cfg.Namespace()
	if err != nil {
		return nil, nil, "", err
	}
	dyn, err := dynamic.NewForConfig(rest)
	if err != nil {
		return nil, nil, "", err
	}
	kube, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, nil, "", err
	}
	return dyn, kube, ns, nil
}
