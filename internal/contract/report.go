package contract

// ReportConfigKey is the key of a sweep's report config in ConfigMap <job>-config, added once the sweep's
// points ended (the served point is known only then); its report Job reads it as
// /etc/distillery/report.json.
const ReportConfigKey = "report.json"

// ReportConfig is report.json, the config of a sweep's report Job
// (`python -m distillery_student report --config /etc/distillery/report.json`): it reads each point's
// metrics.json and writes ReportJSONKey and ReportSVGKey into ReportConfigMap.
type ReportConfig struct {
	// JobDir is the job run's folder (JobDir).
	JobDir string `json:"jobDir"`
	// Points are the sweep's points that succeeded, in index order.
	Points []ReportPoint `json:"points"`
	// ServedIndex is the point the operator serves as the job's StudentModel.
	ServedIndex int `json:"servedIndex"`
	// ReportConfigMap is the ConfigMap to patch (ReportConfigMapName).
	ReportConfigMap string `json:"reportConfigMap"`
}

// ReportPoint is one point of a sweep: where its metrics.json is, and its settings (named as in
// metrics.json's settings; mode in train.json's form).
type ReportPoint struct {
	Index           int     `json:"index"`
	MetricsPath     string  `json:"metricsPath"`
	Mode            string  `json:"mode"`
	RationaleWeight float64 `json:"rationaleWeight"`
	Fraction        float64 `json:"fraction"`
	Seed            int     `json:"seed"`
	BaseModel       string  `json:"baseModel"`
}
