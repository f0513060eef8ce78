#!/bin/sh
# azd prepackage hook of service "patrol" (azure.yaml): builds the deployment package
# with `patrol-dev package` and stages it where azure.yaml's `dist` points.
#
# azd runs this hook in the service's project folder, the repository root. But for a
# `language: custom` service azd takes `dist` as it is written, relative to azd's own
# working directory rather than to the project (Azure/azure-dev
# cli/azd/pkg/project/framework_service_custom.go; `dist` is a plain string, no ${VAR}
# expansion, service_config.go). `azd deploy` started in a subdirectory would therefore
# zip a folder that does not exist. This hook finds azd's working directory and stops
# with the fix instead. It looks for it through the process table (Linux /proc, or
# `lsof` on macOS); where neither answers, it does not check.
set -eu

root=$(pwd -P)

# azd_cwd prints the working directory of the nearest ancestor process named azd, or
# nothing.
azd_cwd() {
	pid=$PPID
	depth=0
	while [ "${pid:-0}" -gt 1 ] && [ "$depth" -lt 16 ]; do
		name=$(ps -o comm= -p "$pid" 2>/dev/null || true)
		case "${name##*/}" in
		azd | azd.exe)
			readlink "/proc/$pid/cwd" 2>/dev/null ||
				lsof -a -p "$pid" -d cwd -Fn 2>/dev/null | sed -n 's/^n//p' ||
				true
			return 0
			;;
		esac
		pid=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
		depth=$((depth + 1))
	done
}

cwd=$(azd_cwd)
if [ -n "$cwd" ] && [ "$(cd "$cwd" 2>/dev/null && pwd -P)" != "$root" ]; then
	echo "patrol: azd is running in $cwd, but azure.yaml's dist (.azure/package/app) is" >&2
	echo "patrol: resolved from azd's working directory, so azd would not find the package." >&2
	echo "patrol: Run azd from the repository root: cd '$root' (or add --cwd '$root')." >&2
	exit 1
fi

exec go run ./cmd/patrol-dev package --out .azure/package
