"""Every service process the tests start, and the rule for a service that is absent.

Three run once per test session, started on first use and stopped when the session ends
(`stop_all`, from tests/conftest.py, and atexit): moto (AWS SQS and SNS over real HTTP), the
Google Pub/Sub emulator, and bqemulator (a BigQuery API surface over DuckDB). Each one's
`unavailable()` starts it, or finds the one its variable already names, and returns None or why
it cannot run. Once it runs, this process has the variables the client libraries read, so any
`slipstream` subprocess started with `os.environ` (or the service's `env()`) uses it too.

nats-server is started per test instead (`nats_server`): the tests that use their own kill,
pause and restart it; the others share the server at 127.0.0.1:4222.

Every process runs in a process group of its own (gcloud spawns Java, moto may spawn helpers)
and the whole group is killed. tests/unit starts none of them: its conftest forbids it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest

if TYPE_CHECKING:
    from google.cloud import bigquery

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("SLIPSTREAM_REQUIRE_SERVICES") == "1"
# Set while a test of tests/unit runs: a service started then is a test in the wrong directory.
forbidden: str | None = None


def service_missing(name: str, why: str) -> None:
    """Skip the calling test because `name` is absent, or fail when CI requires services."""
    message = f"{name} is not available: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (SLIPSTREAM_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http_status(url: str) -> int | None:
    """The status code `url` answers with, or None when nothing answers."""
    try:
        with _direct.open(url, timeout=1) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:  # an answer, if not a happy one
        return int(exc.code)
    except OSError:
        return None


class Process:
    """A command in a process group of its own, logging to a file, ready when `ready()` says."""

    def __init__(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.workdir = Path(tempfile.mkdtemp(prefix=f"slipstream-{name}-"))
        self.log = self.workdir / "process.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], deadline: float) -> str | None:
        """None once `ready()` is true, else why not (the process is stopped then)."""
        if forbidden:
            raise AssertionError(f"{self.name} started during {forbidden}")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
            )
        atexit.register(self.stop)
        until = time.monotonic() + deadline
        while not ready():
            if self.process.poll() is not None or time.monotonic() > until:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                self.stop()
                return f"{self.name} did not start: " + (
                    " | ".join(tail) or f"not ready within {deadline:.0f} s"
                )
            time.sleep(0.1)
        return None

    def signal(self, number: signal.Signals) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, number)

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL if it lingers; then the directory goes."""
        process = self.process
        if process is not None:
            self.signal(signal.SIGTERM)
            self.signal(signal.SIGCONT)  # a paused process handles its SIGTERM only once resumed
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                process.wait(timeout=10)
            self.signal(signal.SIGKILL)  # a parent may exit before its children (gcloud, Java)
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


class SessionService:
    """A service shared by the whole session, started by the first test that asks for it."""

    name = ""

    def __init__(self) -> None:
        self.failure: str | None = None
        self.address: str | None = None
        self.process: Process | None = None
        self.saved: dict[str, str | None] = {}
        self._tried = False

    def start(self) -> str | None:
        """Start the service (or adopt the one its variable names); why not, or None."""
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """None once the service runs (started now if needed), else why it cannot run."""
        if not self._tried:
            self._tried = True
            self.failure = self.start()
        return self.failure

    def require(self) -> str:
        """The service's address; skips (or fails in CI) when it cannot run."""
        why = self.unavailable()
        if why:
            service_missing(self.name, why)
        assert self.address is not None
        return self.address

    def set_env(self, values: dict[str, str | None]) -> None:
        for name, value in values.items():
            self.saved.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def stop(self) -> None:
        """Stop what this service started and give the environment back; the next use restarts."""
        if self.process is not None:
            self.process.stop()
            self.process = None
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved = {}
        self.address = None
        self.failure = None
        self._tried = False


class Moto(SessionService):
    """moto's server: SQS and SNS at `http://127.0.0.1:PORT` (or `AWS_ENDPOINT_URL`'s)."""

    name = "moto (sqs)"
    region = "us-east-1"
    credentials: ClassVar[dict[str, str]] = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    # Variables that could send boto3 elsewhere than moto, or to credentials that do not exist.
    cleared = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_SQS",
               "AWS_ENDPOINT_URL_SNS")  # fmt: skip

    def start(self) -> str | None:
        external = os.environ.get("AWS_ENDPOINT_URL")
        if external:  # started by someone else (CI service, a developer): use it, never stop it
            if http_status(external) is None:  # moto, LocalStack…: any HTTP answer will do
                return f"AWS_ENDPOINT_URL={external} does not answer"
            for name, value in {**self.credentials, "AWS_DEFAULT_REGION": self.region}.items():
                os.environ.setdefault(name, value)
            self.address = external
            return None
        if importlib.util.find_spec("moto.server") is None:
            return "moto is not installed (pip install 'moto[server]')"
        endpoint = f"http://127.0.0.1:{free_port()}"
        port = endpoint.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port]
        self.process = Process("moto", command)
        data = f"{endpoint}/moto-api/data.json"  # moto's own API: answers once it serves
        failure = self.process.start(lambda: http_status(data) == 200, deadline=30)
        if failure:
            return failure
        self.set_env(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": self.region,
                **self.credentials,
                **dict.fromkeys(self.cleared),
            }
        )
        self.address = endpoint
        return None

    def env(self) -> dict[str, str]:
        """Variables a subprocess needs to use moto (they are also in os.environ)."""
        endpoint = self.require()
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", self.region),
            **{name: os.environ.get(name, value) for name, value in self.credentials.items()},
        }

    async def delete_resources(self, prefix: str) -> None:
        """Delete the queues and topics named `prefix-…` (a test's, on a long-lived server)."""
        await asyncio.to_thread(self._delete_resources, prefix)

    def _delete_resources(self, prefix: str) -> None:
        import boto3  # type: ignore[import-untyped]

        region = os.environ.get("AWS_DEFAULT_REGION", self.region)
        sqs, sns = boto3.client("sqs", region_name=region), boto3.client("sns", region_name=region)
        for url in sqs.list_queues(QueueNamePrefix=f"{prefix}-").get("QueueUrls", []):
            sqs.delete_queue(QueueUrl=url)
        for page in sns.get_paginator("list_topics").paginate():
            for topic in page["Topics"]:
                if topic["TopicArn"].rsplit(":", 1)[-1].startswith(f"{prefix}-"):
                    arn = topic["TopicArn"]
                    for sub in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]:
                        sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                    sns.delete_topic(TopicArn=arn)


class PubSubEmulator(SessionService):
    """`gcloud beta emulators pubsub start` at `127.0.0.1:PORT` (or `PUBSUB_EMULATOR_HOST`'s)."""

    name = "pubsub"
    project = "test-project"

    def start(self) -> str | None:
        external = os.environ.get("PUBSUB_EMULATOR_HOST")
        if external:  # started by someone else (CI service, a developer): use it, never stop it
            if http_status(f"http://{external}/") != 200:
                return f"PUBSUB_EMULATOR_HOST={external} does not answer"
            os.environ.setdefault("PUBSUB_PROJECT_ID", self.project)
            self.address = external
            return None
        if shutil.which("gcloud") is None:
            return "gcloud is not installed (it runs the Pub/Sub emulator)"
        if shutil.which("java") is None:
            return "java is not installed (the Pub/Sub emulator needs Java 17+)"
        host = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        }
        command = ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={host}",
                   f"--project={self.project}", "--data-dir=data"]  # fmt: skip
        self.process = Process("pubsub-emulator", command, env)
        (self.process.workdir / "data").mkdir()
        # Java starts slowly on a busy 2-core machine.
        failure = self.process.start(lambda: http_status(f"http://{host}/") == 200, deadline=60)
        if failure:
            return failure
        self.set_env({"PUBSUB_EMULATOR_HOST": host, "PUBSUB_PROJECT_ID": self.project})
        self.address = host
        return None

    def env(self) -> dict[str, str]:
        """Variables a subprocess needs to use the emulator (they are also in os.environ)."""
        return {"PUBSUB_EMULATOR_HOST": self.require(), "PUBSUB_PROJECT_ID": self.project}


class BigQueryEmulator(SessionService):
    """bqemulator's REST API at `http://127.0.0.1:PORT` (or `BIGQUERY_EMULATOR_HOST`'s).

    It pins DuckDB 1.5.5 and registers a pytest plugin that aborts pytest, so it lives in a venv
    of its own, `.venv-bqemu` (`make venv-bqemu`), and runs as a process. Where it answers
    differently from BigQuery is listed in docs/backends/bigquery.md.
    """

    name = "bigquery (bqemulator)"
    project = "slipstream-test"
    binary = ROOT / ".venv-bqemu" / "bin" / "bqemulator"

    def start(self) -> str | None:
        external = os.environ.get("BIGQUERY_EMULATOR_HOST")
        if external:  # started by someone else: use it, never stop it
            endpoint = external if "://" in external else f"http://{external}"
            if http_status(f"{endpoint}/readyz") != 200:
                return f"BIGQUERY_EMULATOR_HOST={external} does not answer"
            self.address = endpoint
            return None
        if not self.binary.is_file():
            return f"{self.binary} is missing (`make venv-bqemu` installs it)"
        rest, grpc = free_port(), free_port()
        command = [str(self.binary), "start", "--rest-host", "127.0.0.1", "--rest-port", str(rest),
                   "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--project",
                   self.project, "--log-level", "warning"]  # fmt: skip
        # Its format extensions would be downloaded at start; this machine has no internet.
        env = {**os.environ, "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
        self.process = Process("bqemulator", command, env)
        endpoint = f"http://127.0.0.1:{rest}"
        failure = self.process.start(lambda: http_status(f"{endpoint}/readyz") == 200, 60)
        if failure:
            return failure
        self.address = endpoint
        return None

    def client(self, project: str, location: str | None = None) -> bigquery.Client:
        """A BigQuery client of the emulator: anonymous, at its endpoint."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=self.require()),
        )


class NatsServer:
    """A nats-server of a test's own, on a free port, that the test can kill, pause and restart.

    The shared server at 127.0.0.1:4222 serves the other tests; one that stops its server needs
    its own.
    """

    def __init__(self, binary: str, store: Path, config: str = "") -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._command = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]
        if config:  # settings that have no command-line flag (max_payload, say)
            (store / "nats.conf").write_text(config)
            self._command += ["-c", str(store / "nats.conf")]
        self._processes: list[Process] = []

    def start(self) -> None:
        process = Process("nats-server", self._command)
        self._processes.append(process)
        failure = process.start(lambda: port_open("127.0.0.1", self.port), deadline=10)
        assert failure is None, failure

    def stop(self) -> None:
        """SIGKILL: a crash, not a clean shutdown (the kernel closes its connections)."""
        process = self._processes[-1]
        process.signal(signal.SIGKILL)
        if process.process is not None:
            process.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers. Returns once it has stopped."""
        process = self._processes[-1].process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        os.waitpid(process.pid, os.WUNTRACED)  # returns when the child is stopped

    def close(self) -> None:
        for process in self._processes:
            process.stop()


@contextlib.contextmanager
def nats_server(store: Path, config: str = "") -> Iterator[NatsServer]:
    """A nats-server of the test's own; skipped (failed in CI) without the binary on PATH."""
    binary = shutil.which("nats-server")
    if binary is None:
        service_missing("nats-server", "the nats-server binary is not on PATH")
    server = NatsServer(binary or "", store, config)
    try:
        server.start()
        yield server
    finally:
        server.close()


moto = Moto()
pubsub = PubSubEmulator()
bigquery_emulator = BigQueryEmulator()


def stop_all() -> None:
    for service in (moto, pubsub, bigquery_emulator):
        service.stop()
