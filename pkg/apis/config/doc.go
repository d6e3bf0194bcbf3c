// Package config holds the KubeSchedulerConfiguration arguments of cosched's
// plugins, with their defaults and validation.
//
// Out-of-tree plugin arguments reach a plugin as raw JSON or YAML inside a
// runtime.Unknown; Decode turns them into typed, defaulted and validated args,
// and reports unknown fields so that a typo in a config file is an error
// rather than a silently ignored setting.
package config
