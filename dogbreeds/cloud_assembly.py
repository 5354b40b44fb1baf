"""What `cdk deploy` would ship, read from the synthesised cloud assembly, for local mode.

Local mode runs the deployed artefacts, never a second rendering of them: the pipeline definitions
are the ``AWS::SageMaker::Pipeline`` resources of an environment's templates in ``cdk.out``, with
CloudFormation's intrinsic functions resolved for a local account and region (the way
CloudFormation resolves them at deploy time), and the CDK file assets are staged into the local S3
folder under the bucket and object keys their ``*.assets.json`` manifests give. ``Ref`` and
``Fn::GetAtt`` return what CloudFormation documents for each resource type (``_KINDS``); anything
not modelled raises rather than passing an invented value on. The IAM access test reads the same
resolved resources (``resources``, ``ref``, ``get_att``) for a test account.

The assembly is synthesised with the project's pinned CDK CLI (`npx cdk synth`) into
``.cache/assemblies/<env>-<fingerprint>/``, where the fingerprint covers every file that shapes it,
so a second local run with unchanged code reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ASSEMBLY_CACHE = PROJECT_ROOT / ".cache" / "assemblies"
# Every file that can change what `cdk synth` writes.
ASSEMBLY_SOURCES = ("app.py", "cdk.json", "package-lock.json", "requirements.txt")
ASSEMBLY_SOURCE_DIRS = ("contract", "stacks", "pipeline_code")

LOCAL_ACCOUNT = "000000000000"
# Used when the environment pins no region; any region with AWS's PyTorch images will do.
DEFAULT_LOCAL_REGION = "us-east-1"
PIPELINE_TYPE = "AWS::SageMaker::Pipeline"
# Construct ids of the two pipelines (stacks/training_stack.py, stacks/monitoring_stack.py).
TRAINING_PIPELINE_CONSTRUCT = "TrainingPipeline"
MONITORING_PIPELINE_CONSTRUCT = "MonitoringPipeline"


class AssemblyError(Exception):
    """The cloud assembly is missing, cannot be synthesised, or does not hold what was asked."""


@dataclass(frozen=True)
class _Kind:
    """A resource type's return values as CloudFormation documents them: what ``Ref`` returns and
    the ``Fn::GetAtt`` attributes, as formats of ``{name}`` (the physical name, from the property
    ``name_property`` or generated), ``{account}``, ``{region}``, ``{partition}``; ``ref`` may also
    name an attribute."""

    name_property: str | None
    attributes: dict[str, str]
    ref: str = "{name}"


def _arn(service: str, resource: str) -> str:
    return f"arn:{{partition}}:{service}:{{region}}:{{account}}:{resource}"


_KINDS = {
    "AWS::S3::Bucket": _Kind("BucketName", {"Arn": "arn:{partition}:s3:::{name}"}),
    "AWS::IAM::Role": _Kind("RoleName", {"Arn": "arn:{partition}:iam::{account}:role/{name}"}),
    # A key has no name: Ref returns its key id, a UUID that KMS picks.
    "AWS::KMS::Key": _Kind(None, {"Arn": _arn("kms", "key/{name}")}),
    "AWS::SNS::Topic": _Kind(
        "TopicName", {"TopicArn": _arn("sns", "{name}"), "TopicName": "{name}"}, ref="{TopicArn}"
    ),
    "AWS::SQS::Queue": _Kind(
        "QueueName",
        {
            "Arn": _arn("sqs", "{name}"),
            "QueueName": "{name}",
            "QueueUrl": "https://sqs.{region}.amazonaws.com/{account}/{name}",
        },
        ref="{QueueUrl}",
    ),
    "AWS::Lambda::Function": _Kind("FunctionName", {"Arn": _arn("lambda", "function:{name}")}),
    "AWS::Logs::LogGroup": _Kind("LogGroupName", {"Arn": _arn("logs", "log-group:{name}:*")}),
    "AWS::Events::Rule": _Kind("Name", {"Arn": _arn("events", "rule/{name}")}),  # on the default bus
    "AWS::CloudWatch::Alarm": _Kind("AlarmName", {"Arn": _arn("cloudwatch", "alarm:{name}")}),
    # Schedules of the default schedule group.
    "AWS::Scheduler::Schedule": _Kind("Name", {"Arn": _arn("scheduler", "schedule/default/{name}")}),
}
# The random part of a name CloudFormation generates, <stack>-<logical id>-<random>.
GENERATED_NAME_SUFFIX = "EXAMPLE"
_NO_VALUE = {"Ref": "AWS::NoValue"}


@dataclass(frozen=True)
class Resource:
    """One resource of a stack, its properties resolved."""

    stack: str
    logical_id: str
    type: str
    properties: dict[str, Any]


def source_fingerprint(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256()
    files = [root / name for name in ASSEMBLY_SOURCES if (root / name).is_file()]
    for folder in ASSEMBLY_SOURCE_DIRS:
        files += sorted(
            p
            for p in (root / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_assembly(env_name: str, *, cache_dir: Path = ASSEMBLY_CACHE) -> Path | None:
    """The assembly ``synthesize`` would return at once (the sources' cached one), or None."""
    target = cache_dir / f"{env_name}-{source_fingerprint()}"
    return target if (target / "manifest.json").is_file() else None


def synthesize(
    env_name: str, *, stream: TextIO | None = sys.stdout, cache_dir: Path = ASSEMBLY_CACHE
) -> Path:
    """The cloud assembly of ``env_name``: reused when the sources are unchanged, else synthesised."""
    target = cache_dir / f"{env_name}-{source_fingerprint()}"
    if (target / "manifest.json").is_file():
        return target
    npx = shutil.which("npx")
    if npx is None or not (PROJECT_ROOT / "node_modules" / ".bin" / "cdk").exists():
        raise AssemblyError(
            "local mode runs what `cdk synth` produces, and the pinned CDK CLI is not installed: "
            "run `make setup` (needs Node.js 20+), or pass --assembly DIR with a synthesised cdk.out"
        )
    if stream is not None:
        message = f"synthesising the {env_name} cloud assembly (npx cdk synth) into {target}"
        print(message, file=stream, flush=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{env_name}-", dir=cache_dir))
    environment = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        # Offline synth: no credentials lookups against instance metadata.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    command = [npx, "--no-install", "cdk", "synth", "-q", "-c", f"env={env_name}", "-o", str(scratch)]
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0 or not (scratch / "manifest.json").is_file():
        shutil.rmtree(scratch, ignore_errors=True)
        lines = [line for line in (completed.stderr + completed.stdout).splitlines() if line.strip()]
        raise AssemblyError(
            f"`cdk synth -c env={env_name}` failed (exit {completed.returncode}):\n" + "\n".join(lines[-20:])
        )
    try:
        os.replace(scratch, target)  # atomic: a parallel synth of the same sources may win the race
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
    _prune(cache_dir, env_name, keep=target)
    return target


def _prune(cache_dir: Path, env_name: str, keep: Path, count: int = 3) -> None:
    """Keep the newest few assemblies of an environment; each holds a copy of the code bundle."""
    older = sorted(
        (p for p in cache_dir.glob(f"{env_name}-*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in older[count - 1 :]:
        shutil.rmtree(stale, ignore_errors=True)


@dataclass
class _Stack:
    name: str
    template: dict[str, Any]
    assets_file: Path | None


@dataclass
class CloudAssembly:
    """An environment's synthesised stacks, resolved as if deployed to ``account``/``region``."""

    directory: Path
    account: str = LOCAL_ACCOUNT
    region: str = DEFAULT_LOCAL_REGION
    stacks: dict[str, _Stack] = field(default_factory=dict)
    partition: str = "aws"
    _resources: list[Resource] | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, directory: Path, *, account: str | None = None, region: str | None = None) -> CloudAssembly:
        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise AssemblyError(f"{directory} is not a cloud assembly (no manifest.json); run `cdk synth`")
        manifest = json.loads(manifest_path.read_text())
        stacks: dict[str, _Stack] = {}
        pinned_accounts, pinned_regions = set(), set()
        for artifact_id, artifact in manifest.get("artifacts", {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            properties = artifact.get("properties", {})
            name = properties.get("stackName", artifact_id)
            template = json.loads((directory / properties["templateFile"]).read_text())
            assets = [
                directory / manifest["artifacts"][dep]["properties"]["file"]
                for dep in artifact.get("dependencies", [])
                if manifest["artifacts"].get(dep, {}).get("type") == "cdk:asset-manifest"
            ]
            stacks[name] = _Stack(name, template, assets[0] if assets else None)
            env_account, _, env_region = artifact.get("environment", "aws://unknown-account/unknown-region")[
                len("aws://") :
            ].partition("/")
            if env_account != "unknown-account":
                pinned_accounts.add(env_account)
            if env_region != "unknown-region":
                pinned_regions.add(env_region)
        if not stacks:
            raise AssemblyError(f"{directory} holds no CloudFormation stacks")
        return cls(
            directory,
            account=account or (pinned_accounts.pop() if len(pinned_accounts) == 1 else LOCAL_ACCOUNT),
            region=region or (pinned_regions.pop() if len(pinned_regions) == 1 else DEFAULT_LOCAL_REGION),
            stacks=stacks,
        )

    # --- pipelines ------------------------------------------------------------------------------

    def pipeline(self, construct: str) -> tuple[str, dict[str, Any]]:
        """(pipeline name, definition) of the pipeline built by construct ``construct``."""
        for stack in self.stacks.values():
            for logical_id, resource in stack.template.get("Resources", {}).items():
                path = resource.get("Metadata", {}).get("aws:cdk:path", "")
                if resource.get("Type") == PIPELINE_TYPE and f"/{construct}/" in path:
                    properties = self.resolve(stack, resource["Properties"])
                    body = properties["PipelineDefinition"].get("PipelineDefinitionBody")
                    if body is None:
                        raise AssemblyError(
                            f"{stack.name}/{logical_id}: the definition is not inline "
                            "(PipelineDefinitionS3Location is not supported locally)"
                        )
                    return properties["PipelineName"], json.loads(body)
        raise AssemblyError(
            f"no {PIPELINE_TYPE} built by {construct} in {self.directory} "
            f"(stacks: {', '.join(self.stacks)}); is it disabled in this environment's settings?"
        )

    def training_pipeline(self) -> tuple[str, dict[str, Any]]:
        return self.pipeline(TRAINING_PIPELINE_CONSTRUCT)

    def monitoring_pipeline(self) -> tuple[str, dict[str, Any]]:
        return self.pipeline(MONITORING_PIPELINE_CONSTRUCT)

    # --- assets ---------------------------------------------------------------------------------

    def file_assets(self) -> list[tuple[Path, str, str]]:
        """(local source, bucket, object key) of every file asset `cdk deploy` would publish."""
        found = []
        for stack in self.stacks.values():
            if stack.assets_file is None:
                continue
            manifest = json.loads(stack.assets_file.read_text())
            for asset in manifest.get("files", {}).values():
                if asset["source"].get("packaging", "file") != "file":
                    continue  # zipped folders (Lambda code) are not run locally
                source = stack.assets_file.parent / asset["source"]["path"]
                for destination in asset["destinations"].values():
                    bucket = self.substitute(stack, destination["bucketName"])
                    found.append((source, bucket, self.substitute(stack, destination["objectKey"])))
        return found

    def lambda_code_directory(self, function: Resource) -> Path:
        """The folder `cdk deploy` zips as ``function``'s code (its ``Code.S3Key`` asset)."""
        key = function.properties.get("Code", {}).get("S3Key")
        stack = self.stacks[function.stack]
        if key and stack.assets_file is not None:
            manifest = json.loads(stack.assets_file.read_text())
            for asset in manifest.get("files", {}).values():
                if asset["source"].get("packaging") != "zip":
                    continue
                keys = {self.substitute(stack, d["objectKey"]) for d in asset["destinations"].values()}
                if key in keys:
                    return stack.assets_file.parent / asset["source"]["path"]
        raise AssemblyError(f"{function.stack}/{function.logical_id}: no zipped code asset for S3Key {key!r}")

    def stage_file_assets(self, s3_root: Path) -> int:
        """Copy the file assets to ``<s3_root>/<bucket>/<key>``, as `cdk deploy` uploads them."""
        count = 0
        for source, bucket, key in self.file_assets():
            target = s3_root / bucket / key
            if target.is_file() and target.stat().st_size == source.stat().st_size:
                continue  # content-addressed keys: same key, same bytes
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            os.close(handle)
            shutil.copyfile(source, temporary)
            os.replace(temporary, target)
            count += 1
        return count

    # --- resources ------------------------------------------------------------------------------

    def resources(self, resource_type: str | None = None) -> list[Resource]:
        """Every resource of every stack (or those of ``resource_type``), its properties resolved."""
        if self._resources is None:
            self._resources = [
                Resource(stack.name, logical_id, raw["Type"], self.resolve(stack, raw.get("Properties", {})))
                for stack in self.stacks.values()
                for logical_id, raw in stack.template.get("Resources", {}).items()
            ]
        return [r for r in self._resources if resource_type in (None, r.type)]

    def ref(self, resource: Resource) -> Any:
        """What ``{"Ref": <resource>}`` gives."""
        return self._ref(self.stacks[resource.stack], resource.logical_id)

    def get_att(self, resource: Resource, attribute: str) -> str:
        """What ``{"Fn::GetAtt": [<resource>, attribute]}`` gives."""
        return self._get_att(self.stacks[resource.stack], resource.logical_id, attribute)

    # --- CloudFormation intrinsic functions -----------------------------------------------------

    def pseudo_parameters(self, stack: _Stack) -> dict[str, str]:
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack.name,
        }

    def substitute(self, stack: _Stack, text: str) -> str:
        """``${AWS::AccountId}``-style pseudo parameters in an asset manifest's strings."""
        values = self.pseudo_parameters(stack)
        return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)

    def resolve(self, stack: _Stack, value: Any) -> Any:
        """``value`` with every intrinsic function evaluated, as CloudFormation does at deploy.
        ``{"Ref": "AWS::NoValue"}`` removes the list item or property it stands for."""
        if isinstance(value, list):
            return [self.resolve(stack, item) for item in value if item != _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self._ref(stack, argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(stack, logical_id, attribute)
            if function == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(stack, items))
            if function == "Fn::Sub":
                return self._sub(stack, argument)
            if function == "Fn::FindInMap":
                mapping, first, second = (self.resolve(stack, item) for item in argument)
                try:
                    return stack.template["Mappings"][mapping][first][second]
                except KeyError:
                    raise AssemblyError(
                        f"{stack.name}: Fn::FindInMap {mapping}/{first}/{second} has no value; "
                        f"is {self.region!r} a region the project supports?"
                    ) from None
            if function == "Fn::ImportValue":
                return self._import_value(self.resolve(stack, argument))
            if function == "Fn::Select":
                index, items = argument
                return self.resolve(stack, items)[int(self.resolve(stack, index))]
            if function == "Fn::Split":
                separator, text = argument
                return str(self.resolve(stack, text)).split(separator)
            if function.startswith("Fn::"):
                raise AssemblyError(f"{stack.name}: {function} is not supported: {value}")
        return {key: self.resolve(stack, item) for key, item in value.items() if item != _NO_VALUE}

    def _ref(self, stack: _Stack, name: str) -> Any:
        if name == "AWS::NoValue":
            return None
        pseudo = self.pseudo_parameters(stack)
        if name in pseudo:
            return pseudo[name]
        parameters = stack.template.get("Parameters", {})
        if name in parameters:
            if str(parameters[name].get("Type", "")).startswith("AWS::SSM::Parameter::"):
                # CloudFormation passes the SSM parameter's stored value; the default is its name.
                raise AssemblyError(
                    f"{stack.name}: parameter {name} is read from SSM Parameter Store at deploy time; "
                    "its value is not in the assembly"
                )
            if "Default" not in parameters[name]:
                raise AssemblyError(f"{stack.name}: parameter {name} has no default value")
            return parameters[name]["Default"]
        kind, values = self._return_values(stack, name)
        return kind.ref.format(**values)

    def _get_att(self, stack: _Stack, logical_id: str, attribute: str) -> str:
        kind, values = self._return_values(stack, logical_id)
        if attribute not in kind.attributes:
            raise AssemblyError(f"{stack.name}: Fn::GetAtt {logical_id}.{attribute} is not modelled")
        return values[attribute]

    def _return_values(self, stack: _Stack, logical_id: str) -> tuple[_Kind, dict[str, str]]:
        """The resource's type, and the values its Ref and Fn::GetAtt formats are filled with."""
        resource = self._resource(stack, logical_id)
        kind = _KINDS.get(resource["Type"])
        if kind is None:
            raise AssemblyError(
                f"{stack.name}/{logical_id}: what Ref and Fn::GetAtt return for {resource['Type']} "
                "is not modelled"
            )
        properties = resource.get("Properties", {})
        if kind.name_property in properties:
            name = str(self.resolve(stack, properties[kind.name_property]))
        elif resource["Type"] == "AWS::KMS::Key":
            name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stack.name}/{logical_id}"))
        else:
            # CloudFormation generates <stack>-<logical id>-<random>; bucket names are lower case.
            name = f"{stack.name}-{logical_id}-{GENERATED_NAME_SUFFIX}"[:63]
            name = name.lower() if resource["Type"] == "AWS::S3::Bucket" else name
        values = {"name": name, "account": self.account, "region": self.region, "partition": self.partition}
        values |= {attribute: form.format(**values) for attribute, form in kind.attributes.items()}
        return kind, values

    def _sub(self, stack: _Stack, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: self.resolve(stack, item) for key, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is the literal ${Literal}
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att(stack, logical_id, attribute)
            return str(self._ref(stack, name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _import_value(self, export_name: str) -> Any:
        for stack in self.stacks.values():
            for output in stack.template.get("Outputs", {}).values():
                export = output.get("Export", {}).get("Name")
                if export is not None and self.resolve(stack, export) == export_name:
                    return self.resolve(stack, output["Value"])
        raise AssemblyError(f"Fn::ImportValue {export_name!r}: no stack in the assembly exports it")

    def _resource(self, stack: _Stack, logical_id: str) -> dict[str, Any]:
        try:
            return stack.template["Resources"][logical_id]
        except KeyError:
            raise AssemblyError(f"{stack.name}: no resource or parameter {logical_id!r}") from None
