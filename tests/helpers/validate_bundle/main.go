// validate-bundle: the OCI runtime-tools validator (oci-runtime-tool
// validate's library, written by the runtime-spec's maintainers, packaged
// by Debian) run on a bundle, so that minict's tests check our config.json
// against a reading of the spec that is not ours.
//
//	validate-bundle BUNDLE [CONFIG]  BUNDLE/config.json (or CONFIG, with BUNDLE as its bundle):
//	                                 the validator's checks and the spec's JSON schema
//	validate-bundle --state FILE     a `minict-oci state` answer against the spec's state schema
//
// It prints one line per finding, "CHECK: what is wrong", and exits 1 if
// there is any (0 if none, 2 if it could not run).
//
// The library's own schema check fetches the schema from GitHub; the tests
// run offline, so it is skipped here and the schema is read from Debian's
// copy of the runtime-spec (golang-github-opencontainers-specs-dev).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-multierror"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/validate"
	"github.com/xeipuuv/gojsonschema"
)

const schemaDir = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"

func main() {
	var findings []string
	switch {
	case len(os.Args) == 3 && os.Args[1] == "--state":
		findings = againstSchema("schema", "state-schema.json", os.Args[2])
	case len(os.Args) == 2:
		findings = checkBundle(os.Args[1], filepath.Join(os.Args[1], "config.json"))
	case len(os.Args) == 3:
		findings = checkBundle(os.Args[1], os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "usage: validate-bundle BUNDLE [CONFIG] | validate-bundle --state FILE")
		os.Exit(2)
	}
	for _, finding := range findings {
		fmt.Println(finding)
	}
	if len(findings) > 0 {
		os.Exit(1)
	}
}

// checkBundle runs each of the validator's checks that CheckAll runs, but
// the online schema check, with host-specific checks on (as on the machine
// that will run the bundle).
func checkBundle(bundle, config string) []string {
	var spec rspec.Spec
	text, err := os.ReadFile(config)
	if err == nil {
		err = json.Unmarshal(text, &spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "validate-bundle:", err)
		os.Exit(2)
	}
	validator, err := validate.NewValidator(&spec, bundle, true, "linux")
	if err != nil {
		fmt.Fprintln(os.Stderr, "validate-bundle:", err)
		os.Exit(2)
	}
	checks := []struct {
		name string
		run  func() error
	}{
		{"root", validator.CheckRoot},
		{"semver", validator.CheckSemVer},
		{"platform", validator.CheckPlatform},
		{"mandatory", validator.CheckMandatoryFields},
		{"process", validator.CheckProcess},
		{"mounts", validator.CheckMounts},
		{"hooks", validator.CheckHooks},
		{"annotations", validator.CheckAnnotations},
		{"linux", validator.CheckLinux},
	}
	var findings []string
	for _, check := range checks {
		findings = append(findings, lines(check.name, check.run())...)
	}
	return append(findings, againstSchema("schema", "config-schema.json", config)...)
}

// lines gives each error the check found its own line. The checks return a
// multierror, sometimes one holding no error at all.
func lines(check string, err error) []string {
	var errs []error
	if many, ok := err.(*multierror.Error); ok {
		errs = many.Errors
	} else if err != nil {
		errs = []error{err}
	}
	var out []string
	for _, e := range errs {
		// the first line; the rest is a "Refer to: <spec URL>"
		out = append(out, check+": "+strings.SplitN(e.Error(), "\n", 2)[0])
	}
	return out
}

func againstSchema(check, schema, document string) []string {
	result, err := gojsonschema.Validate(
		gojsonschema.NewReferenceLoader("file://"+filepath.Join(schemaDir, schema)),
		gojsonschema.NewReferenceLoader("file://"+document))
	if err != nil {
		return []string{check + ": " + err.Error()}
	}
	var out []string
	for _, e := range result.Errors() {
		out = append(out, check+": "+e.String())
	}
	return out
}
