# azd prepackage hook of service "patrol" on Windows (azure.yaml): builds the deployment
# package and stages it where azure.yaml's `dist` points.
#
# azd resolves `dist` from its own working directory (see prepackage.sh), so run azd
# from the repository root. This hook cannot see azd's working directory on Windows and
# does not check it. Prefer WSL for deploying (docs/deploy.md): azd re-zips the staged
# folder and NTFS keeps no Unix exec bit for the `patrol` binary.
$ErrorActionPreference = 'Stop'
go run ./cmd/patrol-dev package --out .azure/package
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
