// Package builders makes layerkeeper objects for tests with a fluent builder instead of
// struct literals: MakeLayerPolicy("p", "ns").Mode(v1alpha1.ModeEnforce).Warn("2Gi").Obj().
package builders
