"""Every AWS request the deployed system makes, derived from its resolved templates.

Who makes which request, on what, with which request context:

* SageMaker Pipelines, as each ``AWS::SageMaker::Pipeline``'s role: creating and watching each
  step's job, passing the job's role, creating KMS grants for the job's volume key, reading
  property files for conditions, registering the model package.
* Each job, as its ``RoleArn``: pulling its image, writing its logs, listing and reading every S3
  input (SageMaker lists the URI's key as a prefix before it downloads), writing every output with
  its KMS key, and what the job's own code does through boto3 (the monitors; a job with network
  isolation cannot reach AWS).
* The endpoint the deploy Lambda creates, as the role it passes: reading the registered model
  data, pulling the registered image, writing data capture with the key, writing its logs.
* The deploy and retrain-guard Lambdas, as their roles: every boto3 call of their handlers (a scan
  of their source checks that none is missed), what Application Auto Scaling checks of its caller,
  their logs and their on-failure queues.
* EventBridge Scheduler as the schedule's role; EventBridge and CloudWatch alarms publishing to
  topics and queues and invoking functions as service principals; each service assuming its role.

Names come from the templates (pipeline definitions, Lambda environments, rule targets, alarm
actions). Where AWS picks a name at run time (job names, model package versions, capture files,
log streams), an example in AWS's documented format stands in.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambda_code import function_module
from repo_paths import REPO_ROOT

from dogbreeds.cloud_assembly import CloudAssembly
from iam_access.pipelines import PipelineRun, Step, UnresolvableError, json_gets
from iam_access.policies import PolicyStore

CONTAINER_DIR = REPO_ROOT / "pipeline_code" / "container"

SAGEMAKER = "sagemaker.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
SCHEDULER = "scheduler.amazonaws.com"
EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"

# Examples of names AWS chooses at run time.
EXAMPLE_PACKAGE_VERSION = 3
EXAMPLE_DIGEST = "0123abcd"
EXAMPLE_LOG_TIME = "1764237600"
EXAMPLE_INSTANCE = "i-0123456789abcdef0"
EXAMPLE_SCALABLE_TARGET = "0123456789abcdef0123456789abcdef"
EXAMPLE_ALARM_SUFFIX = "AlarmHigh-01234567-89ab-cdef-0123-456789abcdef"
EXAMPLE_LAMBDA_STREAM = "2026/11/27/[$LATEST]0123456789abcdef0123456789abcdef"
EXAMPLE_OBJECT = "part-00000.bin"

# SageMaker's own log groups for jobs and endpoints.
PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
# The role Application Auto Scaling creates for SageMaker endpoint targets.
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"

# AWS's Deep Learning Container repositories live in AWS-owned accounts whose repository policies
# are not in our templates; they let every account pull. This stand-in says exactly that.
AWS_IMAGE_REPOSITORY_POLICY = "assumed/aws-deep-learning-containers-repository-policy"
AWS_IMAGE_REPOSITORY_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AnyAccountMayPull",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": "*",
        }
    ],
}

# Container scripts whose AWS calls are derived from their arguments (they run without network
# isolation); any other script must run with network isolation, so it cannot call AWS at all.
MONITOR_SCRIPTS = ("monitor_data_quality.py", "monitor_model_quality.py")


@dataclass(frozen=True)
class Request:
    """One AWS request: who, what, on which resource, with which context, and why."""

    principal: str
    action: str
    resource: str
    resource_account: str
    context: tuple[tuple[str, Any], ...]
    identity_of: str | None  # the role whose identity policies apply; None for a service
    resource_policy: str | None
    source: str

    def key(self) -> tuple:
        return (self.principal, self.action, self.resource, self.context)

    def describe(self) -> str:
        context = ", ".join(f"{k}={v}" for k, v in self.context if k != "aws:SecureTransport")
        who = self.principal.rsplit("/", 2)[-2] if self.identity_of else self.principal
        return (
            f"{who} {self.action} on {self.resource}"
            + (f" [{context}]" if context else "")
            + f" ({self.source})"
        )


@dataclass(frozen=True)
class Principal:
    arn: str
    role_arn: str | None

    @property
    def account_context(self) -> dict[str, str]:
        return {"aws:PrincipalArn": self.role_arn} if self.role_arn else {}


@dataclass
class Accesses:
    assembly: CloudAssembly
    store: PolicyStore
    requests: dict[tuple, Request] = field(default_factory=dict)
    # boto3 operations of our code that the derivation covers (``service:Operation``).
    code_operations: set[str] = field(default_factory=set)
    # What could not be checked, and why.
    not_checked: list[str] = field(default_factory=list)
    registered_packages: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def derive(cls, assembly: CloudAssembly, store: PolicyStore) -> Accesses:
        accesses = cls(assembly, store)
        store.add_document(AWS_IMAGE_REPOSITORY_POLICY, AWS_IMAGE_REPOSITORY_DOCUMENT)
        accesses._pipelines()
        accesses._endpoints()
        accesses._lambdas()
        accesses._schedules()
        accesses._rule_targets()
        accesses._alarm_actions()
        return accesses

    def all(self) -> list[Request]:
        return list(self.requests.values())

    # ---- building requests --------------------------------------------------------------------

    def role(self, role_arn: str, session: str) -> Principal:
        role = self.store.role(role_arn)
        if role_arn in self.store.managed:
            self.not_checked.append(
                f"{role.name}: managed policies {self.store.managed[role_arn]} are not in the templates"
            )
        a = self.assembly
        return Principal(f"arn:{a.partition}:sts::{a.account}:assumed-role/{role.name}/{session}", role_arn)

    def service(self, name: str) -> Principal:
        return Principal(name, None)

    def add(
        self,
        who: Principal,
        action: str,
        resource: str,
        source: str,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        request = self.make(who, action, resource, source, context)
        self.requests.setdefault(request.key(), request)

    def make(
        self,
        who: Principal,
        action: str,
        resource: str,
        source: str,
        context: Mapping[str, Any] | None = None,
    ) -> Request:
        """A request with the context every request carries and the resource's policy."""
        values = {"aws:SecureTransport": "true", **who.account_context, **(context or {})}
        context_items = tuple(sorted((k, _context_value(v)) for k, v in values.items() if v is not None))
        account = self._account_of(resource)
        policy = self.store.resource_policy(resource)
        if (
            policy is None
            and resource.startswith("arn:")
            and ":ecr:" in resource
            and account != self.assembly.account
        ):
            policy = AWS_IMAGE_REPOSITORY_POLICY
        return Request(who.arn, action, resource, account, context_items, who.role_arn, policy, source)

    def _account_of(self, resource: str) -> str:
        parts = resource.split(":")
        if resource.startswith("arn:") and len(parts) > 4 and parts[4]:
            return parts[4]
        return self.assembly.account  # buckets (no account in their ARN) and "*" are this account's

    def arn(self, service: str, resource: str) -> str:
        a = self.assembly
        return f"arn:{a.partition}:{service}:{a.region}:{a.account}:{resource}"

    # ---- S3, KMS, ECR and logs, as jobs and services use them -------------------------------

    def _bucket_key(self, bucket: str) -> str | None:
        """The KMS key a bucket of the templates encrypts new objects with by default."""
        for resource in self.assembly.resources("AWS::S3::Bucket"):
            if self.assembly.ref(resource) != bucket:
                continue
            rules = resource.properties.get("BucketEncryption", {}).get(
                "ServerSideEncryptionConfiguration", []
            )
            for rule in rules:
                default = rule.get("ServerSideEncryptionByDefault", {})
                if default.get("SSEAlgorithm") == "aws:kms":
                    return default["KMSMasterKeyID"]
        return None

    def s3_list(self, who: Principal, uri: str, source: str) -> None:
        bucket, key = split_s3_uri(uri)
        bucket_arn = f"arn:{self.assembly.partition}:s3:::{bucket}"
        self.add(who, "s3:ListBucket", bucket_arn, source, {"s3:prefix": key})

    def s3_get(self, who: Principal, uri: str, source: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.add(who, "s3:GetObject", f"arn:{self.assembly.partition}:s3:::{bucket}/{key}", source)
        bucket_key = self._bucket_key(bucket)
        if bucket_key:
            self.kms(who, ["kms:Decrypt"], bucket_key, source, via="s3")

    def s3_read_prefix(self, who: Principal, uri: str, source: str) -> None:
        """An S3Prefix input: SageMaker lists the URI's key as a prefix, then gets what it found."""
        self.s3_list(who, uri, source)
        self.s3_get(who, uri if _names_object(uri) else f"{uri.rstrip('/')}/{EXAMPLE_OBJECT}", source)

    def s3_put(self, who: Principal, uri: str, source: str, kms_key: str | None = None) -> None:
        bucket, key = split_s3_uri(uri)
        context = (
            {
                "s3:x-amz-server-side-encryption": "aws:kms",
                "s3:x-amz-server-side-encryption-aws-kms-key-id": kms_key,
            }
            if kms_key
            else {}
        )
        self.add(who, "s3:PutObject", f"arn:{self.assembly.partition}:s3:::{bucket}/{key}", source, context)
        for key_arn in dict.fromkeys(k for k in (kms_key, self._bucket_key(bucket)) if k):
            self.kms(who, ["kms:GenerateDataKey"], key_arn, source, via="s3")

    def kms(
        self,
        who: Principal,
        actions: Iterable[str],
        key_arn: str,
        source: str,
        *,
        via: str | None = None,
        grant: bool = False,
    ) -> None:
        context: dict[str, Any] = {}
        if via:
            context["kms:ViaService"] = f"{via}.{self.assembly.region}.amazonaws.com"
        for action in actions:
            extra = {"kms:GrantIsForAWSResource": "true"} if grant and action == "kms:CreateGrant" else {}
            self.add(who, action, key_arn, source, {**context, **extra})

    def ecr_pull(self, who: Principal, image_uri: str, source: str) -> None:
        registry, _, path = image_uri.partition("/")
        account, _, rest = registry.partition(".dkr.ecr.")
        region = rest.split(".", 1)[0]
        repository = path.split("@", 1)[0].rsplit(":", 1)[0]
        arn = f"arn:{self.assembly.partition}:ecr:{region}:{account}:repository/{repository}"
        for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
            self.add(who, action, arn, f"{source}: pull {image_uri}")
        self.add(who, "ecr:GetAuthorizationToken", "*", f"{source}: log in to {registry}")

    def logs(self, who: Principal, group: str, stream: str, source: str, *, create_group: bool) -> None:
        # CloudWatch Logs authorises log-group actions on the group's ARN with a ":*" suffix.
        group_arn = self.arn("logs", f"log-group:{group}")
        if create_group:
            self.add(who, "logs:CreateLogGroup", f"{group_arn}:*", source)
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            self.add(who, action, f"{group_arn}:log-stream:{stream}", source)

    def assume(
        self, service: str, role_arn: str, source: str, context: Mapping[str, Any] | None = None
    ) -> None:
        self.add(self.service(service), "sts:AssumeRole", role_arn, source, context)

    # ---- pipelines ----------------------------------------------------------------------------

    def _pipelines(self) -> None:
        schedules = self.assembly.resources("AWS::Scheduler::Schedule")
        # Training first: the monitors read the baselines its RegisterModel step records.
        pipelines = sorted(
            self.assembly.resources("AWS::SageMaker::Pipeline"),
            key=lambda p: not any(s.type == "RegisterModel" for s in _run(p).steps.values()),
        )
        for pipeline in pipelines:
            name = pipeline.properties["PipelineName"]
            role_arn = pipeline.properties["RoleArn"]
            self.assume(SAGEMAKER, role_arn, f"pipeline {name} assumes its role")
            runs = [_run(pipeline)]
            for schedule in schedules:
                target = schedule.properties["Target"]
                if target["Arn"] == self.arn("sagemaker", f"pipeline/{name.lower()}"):
                    parameters = target.get("SageMakerPipelineParameters", {}).get(
                        "PipelineParameterList", []
                    )
                    runs.append(_run(pipeline, {p["Name"]: p["Value"] for p in parameters}))
            for run in runs:
                for step in run.steps.values():
                    self._step(run, step, self.role(role_arn, "SageMakerPipelines"))

    def _step(self, run: PipelineRun, step: Step, pipeline: Principal) -> None:
        where = f"pipeline {run.name} step {step.name}"
        if step.type == "Processing":
            self._processing(run, step, pipeline, where)
        elif step.type == "Training":
            self._training(run, step, pipeline, where)
        elif step.type == "RegisterModel":
            self._register(run, step, pipeline, where)
        elif step.type == "Condition":
            for json_get in json_gets(step.arguments.get("Conditions", [])):
                _, uri = run.property_file(json_get["PropertyFile"])
                self.s3_get(pipeline, uri, f"{where}: read property file")
        elif step.type != "Fail":
            raise UnresolvableError(f"{where}: step type {step.type} is not modelled")

    def _start_job(
        self,
        run: PipelineRun,
        pipeline: Principal,
        where: str,
        *,
        kind: str,
        job_arn: str,
        role_arn: str,
        context: dict[str, Any],
        volume_key: str | None,
    ) -> None:
        self.add(pipeline, f"sagemaker:Create{kind}Job", job_arn, where, context)
        self.add(pipeline, f"sagemaker:Describe{kind}Job", job_arn, where)
        self.add(pipeline, "iam:PassRole", role_arn, where, {"iam:PassedToService": SAGEMAKER})
        if volume_key:
            # The caller lets SageMaker use the volume key through a grant.
            self.kms(
                pipeline,
                ["kms:CreateGrant", "kms:DescribeKey"],
                volume_key,
                f"{where}: volume key",
                via="sagemaker",
                grant=True,
            )
        self.assume(SAGEMAKER, role_arn, f"{where}: job assumes its role")

    def _processing(self, run: PipelineRun, step: Step, pipeline: Principal, where: str) -> None:
        args = run.value({k: v for k, v in step.arguments.items() if k != "AppSpecification"})
        app_spec = step.arguments["AppSpecification"]
        job = run.job_name(step.name)
        cluster = args["ProcessingResources"]["ClusterConfig"]
        outputs = args.get("ProcessingOutputConfig", {})
        network = args.get("NetworkConfig", {})
        context = {
            "sagemaker:InstanceTypes": cluster["InstanceType"],
            "sagemaker:NetworkIsolation": network.get("EnableNetworkIsolation", False),
            "sagemaker:InterContainerTrafficEncryption": network.get(
                "EnableInterContainerTrafficEncryption", False
            ),
            "sagemaker:VolumeKmsKeyArn": cluster.get("VolumeKmsKeyId"),
            "sagemaker:OutputKmsKeyArn": outputs.get("KmsKeyId"),
            "sagemaker:MaxRuntimeInSeconds": args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"),
        }
        job_arn = self.arn("sagemaker", f"processing-job/{job.lower()}")
        self._start_job(
            run,
            pipeline,
            where,
            kind="Processing",
            job_arn=job_arn,
            role_arn=args["RoleArn"],
            context=context,
            volume_key=cluster.get("VolumeKmsKeyId"),
        )
        who = self.role(args["RoleArn"], "SageMaker")
        self.ecr_pull(who, run.value(app_spec["ImageUri"]), where)
        self.logs(who, PROCESSING_LOG_GROUP, f"{job}/algo-1-{EXAMPLE_LOG_TIME}", where, create_group=True)
        for item in args.get("ProcessingInputs", []):
            if "S3Input" not in item:
                raise UnresolvableError(f"{where}: input {item.get('InputName')} is not an S3 input")
            self.s3_read_prefix(who, item["S3Input"]["S3Uri"], f"{where}: input {item['InputName']}")
        for item in outputs.get("Outputs", []):
            uri = item["S3Output"]["S3Uri"].rstrip("/")
            self.s3_put(
                who,
                f"{uri}/{EXAMPLE_OBJECT}",
                f"{where}: output {item['OutputName']}",
                outputs.get("KmsKeyId"),
            )
        self._container_code(run, step, who, network.get("EnableNetworkIsolation", False), where)

    def _training(self, run: PipelineRun, step: Step, pipeline: Principal, where: str) -> None:
        args = run.value({k: v for k, v in step.arguments.items() if k != "HyperParameters"})
        job = run.job_name(step.name)
        resources = args["ResourceConfig"]
        output = args["OutputDataConfig"]
        context = {
            "sagemaker:InstanceTypes": resources["InstanceType"],
            "sagemaker:NetworkIsolation": args.get("EnableNetworkIsolation", False),
            "sagemaker:InterContainerTrafficEncryption": args.get(
                "EnableInterContainerTrafficEncryption", False
            ),
            "sagemaker:VolumeKmsKeyArn": resources.get("VolumeKmsKeyId"),
            "sagemaker:OutputKmsKeyArn": output.get("KmsKeyId"),
            "sagemaker:MaxRuntimeInSeconds": args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"),
        }
        job_arn = self.arn("sagemaker", f"training-job/{job.lower()}")
        self._start_job(
            run,
            pipeline,
            where,
            kind="Training",
            job_arn=job_arn,
            role_arn=args["RoleArn"],
            context=context,
            volume_key=resources.get("VolumeKmsKeyId"),
        )
        who = self.role(args["RoleArn"], "SageMaker")
        self.ecr_pull(who, args["AlgorithmSpecification"]["TrainingImage"], where)
        self.logs(who, TRAINING_LOG_GROUP, f"{job}/algo-1-{EXAMPLE_LOG_TIME}", where, create_group=True)
        for channel in args.get("InputDataConfig", []):
            source = channel["DataSource"].get("S3DataSource")
            if source is None:
                raise UnresolvableError(f"{where}: channel {channel['ChannelName']} is not an S3 source")
            self.s3_read_prefix(who, source["S3Uri"], f"{where}: channel {channel['ChannelName']}")
        model = f"{output['S3OutputPath'].rstrip('/')}/{job}/output/model.tar.gz"
        self.s3_put(who, model, f"{where}: model artifact", output.get("KmsKeyId"))
        checkpoints = args.get("CheckpointConfig", {}).get("S3Uri")
        if checkpoints:
            # Synced both ways: a resumed (spot) job downloads what the interrupted one uploaded.
            self.s3_read_prefix(who, checkpoints, f"{where}: checkpoints")
            self.s3_put(
                who,
                f"{checkpoints.rstrip('/')}/{EXAMPLE_OBJECT}",
                f"{where}: checkpoints",
                output.get("KmsKeyId"),
            )
        if not args.get("EnableNetworkIsolation", False):
            raise UnresolvableError(f"{where}: training code without network isolation is not modelled")

    def _register(self, run: PipelineRun, step: Step, pipeline: Principal, where: str) -> None:
        args = run.value(step.arguments)
        group = args["ModelPackageGroupName"]
        package = self.arn("sagemaker", f"model-package/{group.lower()}/{EXAMPLE_PACKAGE_VERSION}")
        self.add(
            pipeline,
            "sagemaker:CreateModelPackage",
            package,
            where,
            {"sagemaker:ModelApprovalStatus": args.get("ModelApprovalStatus")},
        )
        self.registered_packages.append({"ModelPackageArn": package, **args})

    # ---- what container code does -------------------------------------------------------------

    def _container_code(
        self, run: PipelineRun, step: Step, who: Principal, isolated: bool, where: str
    ) -> None:
        arguments = [
            str(a) for a in run.value(step.arguments["AppSpecification"].get("ContainerArguments", []))
        ]
        # run_step.sh BUNDLE SCRIPT ARGS...: the bundle's path, then the script and its arguments.
        script = arguments[1] if len(arguments) > 1 else ""
        if script in MONITOR_SCRIPTS:
            self._monitor(container_module(script.removesuffix(".py")).parse_args(arguments[2:]), who, where)
        elif not isolated:
            raise UnresolvableError(f"{where}: {script!r} runs without network isolation and is not modelled")

    def _monitor(self, args: Any, who: Principal, where: str) -> None:
        """monitor_data_quality.py / monitor_model_quality.py on AWS (monitor_io, monitor_baselines,
        monitor_metrics_sink): list and read the window's capture and ground truth, resolve the
        live model's baselines, write reports, publish metrics."""
        window_module = container_module("monitor_window")
        io = container_module("monitor_io")
        window = window_module.monitoring_window(
            args.window_end, args.window_hours, end_override=args.window_end_override
        )
        hour = window.hour_folders()[0]
        deploy = self._deploy_environment(args.endpoint_name)
        variant = deploy["DEPLOY_VARIANT_NAME"]
        self.code_operations |= {"s3:ListObjectsV2", "s3:GetObject", "s3:PutObject"}
        # list_children(capture root), then list_objects of each variant's hour, then its objects.
        self.s3_list(who, _folder(args.capture_uri), f"{where}: capture variants")
        hour_prefix = _folder(io.join(args.capture_uri, variant, hour))
        self.s3_list(who, hour_prefix, f"{where}: capture hour")
        self.s3_get(who, f"{hour_prefix}capture-example.jsonl", f"{where}: capture file")
        ground_truth = getattr(args, "ground_truth_uri", "")
        if ground_truth:
            gt_prefix = _folder(io.join(ground_truth, hour))
            self.s3_list(who, gt_prefix, f"{where}: ground truth hour")
            self.s3_get(who, f"{gt_prefix}labels-example.jsonl", f"{where}: ground truth file")
        report = io.join(window_module.report_prefix(args.output_uri, window, args.run_id), "report.html")
        self.s3_put(who, report, f"{where}: report")
        if args.metrics_sink == container_module("monitor_metrics_sink").CLOUDWATCH:
            self.code_operations.add("cloudwatch:PutMetricData")
            self.add(
                who,
                "cloudwatch:PutMetricData",
                "*",
                f"{where}: metrics",
                {"cloudwatch:namespace": args.metrics_namespace},
            )
        if args.baseline_uri:
            raise UnresolvableError(f"{where}: a fixed --baseline-uri is not modelled")
        self._live_baselines(args.endpoint_name, args.model_package_group, deploy, who, where)

    def _live_baselines(
        self, endpoint: str, group: str, deploy: dict[str, str], who: Principal, where: str
    ) -> None:
        """monitor_baselines.live_model_package_arn and from_model_package, on the deploy Lambda's names."""
        names = deploy_module("deploy_names")
        model = names.versioned_name(deploy["DEPLOY_MODEL_PREFIX"], EXAMPLE_PACKAGE_VERSION, EXAMPLE_DIGEST)
        config = names.versioned_name(
            deploy["DEPLOY_ENDPOINT_CONFIG_PREFIX"], EXAMPLE_PACKAGE_VERSION, EXAMPLE_DIGEST
        )
        model_arn = self.arn("sagemaker", f"model/{model.lower()}")
        calls = {
            "DescribeEndpoint": self.arn("sagemaker", f"endpoint/{endpoint.lower()}"),
            "DescribeEndpointConfig": self.arn("sagemaker", f"endpoint-config/{config.lower()}"),
            "DescribeModel": model_arn,
            "ListTags": model_arn,
            "ListModelPackages": "*",
        }
        for operation, resource in calls.items():
            self.code_operations.add(f"sagemaker:{operation}")
            self.add(who, f"sagemaker:{operation}", resource, f"{where}: find the live model")
        [package] = [p for p in self.registered_packages if p["ModelPackageGroupName"] == group]
        self.code_operations.add("sagemaker:DescribeModelPackage")
        self.add(
            who, "sagemaker:DescribeModelPackage", package["ModelPackageArn"], f"{where}: find the live model"
        )
        baselines = container_module("monitor_baselines").from_model_package(package)
        for name, uri in baselines.describe().items():
            if name != "source":
                self.s3_get(who, uri, f"{where}: baseline {name}")

    # ---- the endpoint ------------------------------------------------------------------------

    def _deploy_functions(self) -> list[Any]:
        return [
            f
            for f in self.assembly.resources("AWS::Lambda::Function")
            if "DEPLOY_ENDPOINT_NAME" in f.properties.get("Environment", {}).get("Variables", {})
        ]

    def _deploy_environment(self, endpoint: str) -> dict[str, str]:
        found = [
            f.properties["Environment"]["Variables"]
            for f in self._deploy_functions()
            if f.properties["Environment"]["Variables"]["DEPLOY_ENDPOINT_NAME"] == endpoint
        ]
        if len(found) != 1:
            raise UnresolvableError(f"expected one deploy Lambda for endpoint {endpoint}, found {len(found)}")
        return found[0]

    def _endpoints(self) -> None:
        """What the endpoint the deploy Lambda creates does, as the role the Lambda passes it."""
        for function in self._deploy_functions():
            env = function.properties["Environment"]["Variables"]
            endpoint = env["DEPLOY_ENDPOINT_NAME"]
            where = f"endpoint {endpoint}"
            role_arn = env["DEPLOY_EXECUTION_ROLE_ARN"]
            who = self.role(role_arn, "SageMaker")
            self.assume(SAGEMAKER, role_arn, f"{where}: model assumes its role")
            packages = [
                p
                for p in self.registered_packages
                if p["ModelPackageGroupName"] == env["DEPLOY_MODEL_PACKAGE_GROUP"]
            ]
            if not packages:
                raise UnresolvableError(f"no pipeline registers into {env['DEPLOY_MODEL_PACKAGE_GROUP']}")
            for package in packages:
                for container in package["InferenceSpecification"]["Containers"]:
                    self.s3_get(who, container["ModelDataUrl"], f"{where}: model data")
                    self.ecr_pull(who, container["Image"], where)
            variant = env["DEPLOY_VARIANT_NAME"]
            self.logs(
                who,
                f"{ENDPOINT_LOG_GROUP_PREFIX}{endpoint}",
                f"{variant}/{EXAMPLE_INSTANCE}",
                where,
                create_group=True,
            )
            if env["DEPLOY_ENDPOINT_KIND"] == "realtime" and int(env["DEPLOY_DATA_CAPTURE_PERCENT"]) > 0:
                # SageMaker's capture layout: <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.
                capture = (
                    f"{env['DEPLOY_CAPTURE_S3_URI'].rstrip('/')}/{endpoint}/{variant}/2026/11/27/10/"
                    f"07-00-000-0123abcd-example.jsonl"
                )
                self.s3_put(who, capture, f"{where}: data capture", env["DEPLOY_KMS_KEY_ARN"])

    # ---- Lambdas ----------------------------------------------------------------------------

    def _lambdas(self) -> None:
        queues = {self.assembly.get_att(q, "Arn"): q for q in self.assembly.resources("AWS::SQS::Queue")}
        destinations = {
            c.properties["FunctionName"]: c.properties.get("DestinationConfig", {})
            for c in self.assembly.resources("AWS::Lambda::EventInvokeConfig")
        }
        for function in self.assembly.resources("AWS::Lambda::Function"):
            name = self.assembly.ref(function)
            role_arn = function.properties["Role"]
            variables = function.properties.get("Environment", {}).get("Variables", {})
            if role_arn in self.store.managed:
                self.not_checked.append(
                    f"Lambda {name}: its role uses managed policies {self.store.managed[role_arn]}, whose "
                    f"documents are not in the templates"
                )
                continue
            where = f"Lambda {name}"
            who = self.role(role_arn, name)
            self.assume(LAMBDA, role_arn, f"{where} assumes its role")
            group = function.properties.get("LoggingConfig", {}).get("LogGroup", f"/aws/lambda/{name}")
            self.logs(who, group, EXAMPLE_LAMBDA_STREAM, where, create_group=False)
            failure = destinations.get(name, {}).get("OnFailure", {}).get("Destination")
            if failure:
                self._send_to_queue(who, failure, queues, f"{where}: on-failure destination")
            if "DEPLOY_ENDPOINT_NAME" in variables:
                self._deploy_lambda(who, variables, where)
            elif "RETRAIN_PIPELINE_NAME" in variables:
                self._retrain_guard(who, variables, where)
            else:
                raise UnresolvableError(f"{where}: what its code calls is not modelled")

    def _send_to_queue(
        self,
        who: Principal,
        queue_arn: str,
        queues: dict[str, Any],
        source: str,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        if not queue_arn.startswith(self.arn("sqs", "")):
            raise UnresolvableError(f"{source}: destination {queue_arn} is not a queue")
        self.add(who, "sqs:SendMessage", queue_arn, source, context)
        key = queues[queue_arn].properties.get("KmsMasterKeyId")
        if key:
            self.kms(who, ["kms:GenerateDataKey", "kms:Decrypt"], key, f"{source}: queue key", via="sqs")

    def _deploy_lambda(self, who: Principal, env: dict[str, str], where: str) -> None:
        """Every call of the deploy Lambda (stacks/functions/deploy_endpoint/code: endpoint_rollout,
        endpoint_autoscaling, endpoint_cleanup), on the names its environment gives it."""
        names = deploy_module("deploy_names")
        autoscaling = deploy_module("endpoint_autoscaling")
        config = deploy_module("deploy_config").DeployConfig.from_environ(env)
        model = names.versioned_name(config.model_prefix, EXAMPLE_PACKAGE_VERSION, EXAMPLE_DIGEST)
        endpoint_config = names.versioned_name(
            config.endpoint_config_prefix, EXAMPLE_PACKAGE_VERSION, EXAMPLE_DIGEST
        )
        endpoint_arn = self.arn("sagemaker", f"endpoint/{config.endpoint_name.lower()}")
        config_arn = self.arn("sagemaker", f"endpoint-config/{endpoint_config.lower()}")
        model_arn = self.arn("sagemaker", f"model/{model.lower()}")
        package_arn = self.arn(
            "sagemaker", f"model-package/{config.model_package_group.lower()}/{EXAMPLE_PACKAGE_VERSION}"
        )
        realtime = config.endpoint_kind == "realtime"
        create_config: dict[str, Any] = {"sagemaker:ModelArn": model_arn}
        if realtime:
            create_config |= {
                "sagemaker:InstanceTypes": config.instance_type,
                "sagemaker:VolumeKmsKeyArn": config.kms_key_arn,
            }
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("sagemaker:DescribeModelPackage", package_arn, {}),
            ("sagemaker:ListModelPackages", "*", {}),
            ("sagemaker:ListEndpointConfigs", "*", {}),
            ("sagemaker:ListModels", "*", {}),
            ("sagemaker:DescribeEndpoint", endpoint_arn, {}),
            ("sagemaker:DescribeModel", model_arn, {}),
            ("sagemaker:CreateModel", model_arn, {"sagemaker:NetworkIsolation": config.network_isolation}),
            ("sagemaker:DeleteModel", model_arn, {}),
            ("sagemaker:DescribeEndpointConfig", config_arn, {}),
            ("sagemaker:CreateEndpointConfig", config_arn, create_config),
            ("sagemaker:DeleteEndpointConfig", config_arn, {}),
            # CreateEndpoint and UpdateEndpoint are authorised on the endpoint and on the config.
            ("sagemaker:CreateEndpoint", endpoint_arn, {}),
            ("sagemaker:CreateEndpoint", config_arn, {}),
            ("sagemaker:UpdateEndpoint", endpoint_arn, {}),
            ("sagemaker:UpdateEndpoint", config_arn, {}),
        ]
        scaling = {
            "application-autoscaling:service-namespace": autoscaling.SERVICE_NAMESPACE,
            "application-autoscaling:scalable-dimension": autoscaling.SCALABLE_DIMENSION,
        }
        target_arn = self.arn("application-autoscaling", f"scalable-target/{EXAMPLE_SCALABLE_TARGET}")
        calls += [
            ("application-autoscaling:DescribeScalableTargets", "*", {}),
            ("application-autoscaling:DeregisterScalableTarget", target_arn, scaling),
            ("application-autoscaling:RegisterScalableTarget", target_arn, scaling),
            ("application-autoscaling:PutScalingPolicy", target_arn, scaling),
        ]
        # deploy_metrics: LiveModelVersion after each rollout, into the function's own namespace.
        calls.append(("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": config.metric_namespace}))
        for action, resource, context in calls:
            self.code_operations.add(action)
            self.add(who, action, resource, where, context)
        self.add(
            who,
            "iam:PassRole",
            config.execution_role_arn,
            f"{where}: CreateModel",
            {"iam:PassedToService": SAGEMAKER},
        )
        if realtime:
            # CreateEndpoint with a config that names a KMS key: the caller grants SageMaker the key.
            self.kms(
                who,
                ["kms:CreateGrant", "kms:DescribeKey"],
                config.kms_key_arn,
                f"{where}: endpoint volume and capture key",
                via="sagemaker",
                grant=True,
            )
            # What Application Auto Scaling checks of its caller for a SageMaker variant target with
            # target tracking (its service-linked role, the variant, the policy's alarms).
            scaling_where = f"{where}: autoscaling {autoscaling.resource_id(config)}"
            for action in ("sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"):
                self.add(who, action, endpoint_arn, scaling_where)
            alarm = self.arn(
                "cloudwatch", f"alarm:TargetTracking-{autoscaling.resource_id(config)}-{EXAMPLE_ALARM_SUFFIX}"
            )
            for action in (
                "cloudwatch:DescribeAlarms",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
            ):
                self.add(who, action, alarm, scaling_where)
            self.add(
                who,
                "iam:CreateServiceLinkedRole",
                f"arn:{self.assembly.partition}:iam::{self.assembly.account}:role/aws-service-role/"
                f"{AUTOSCALING_SERVICE}/{AUTOSCALING_ROLE}",
                scaling_where,
                {"iam:AWSServiceName": AUTOSCALING_SERVICE},
            )

    def _retrain_guard(self, who: Principal, env: dict[str, str], where: str) -> None:
        """The retrain guard (stacks/functions/retrain_guard/code): list the training pipeline's
        executions, start one."""
        name = env["RETRAIN_PIPELINE_NAME"]
        pipelines = {
            p.properties["PipelineName"] for p in self.assembly.resources("AWS::SageMaker::Pipeline")
        }
        if name not in pipelines:
            raise UnresolvableError(f"{where}: pipeline {name} is not in the templates ({sorted(pipelines)})")
        arn = self.arn("sagemaker", f"pipeline/{name.lower()}")
        for action in ("sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"):
            self.code_operations.add(action)
            self.add(who, action, arn, where)

    # ---- Scheduler, EventBridge rules, alarms -------------------------------------------------

    def _schedules(self) -> None:
        for schedule in self.assembly.resources("AWS::Scheduler::Schedule"):
            name = self.assembly.ref(schedule)
            target = schedule.properties["Target"]
            where = f"schedule {name}"
            self.assume(
                SCHEDULER,
                target["RoleArn"],
                f"{where} assumes its role",
                {
                    "aws:SourceAccount": self.assembly.account,
                    "aws:SourceArn": self.assembly.get_att(schedule, "Arn"),
                },
            )
            who = self.role(target["RoleArn"], name)
            if "SageMakerPipelineParameters" not in target:
                raise UnresolvableError(f"{where}: only SageMaker pipeline targets are modelled")
            self.add(who, "sagemaker:StartPipelineExecution", target["Arn"], where)
            if schedule.properties.get("KmsKeyArn"):
                self.kms(who, ["kms:Decrypt"], schedule.properties["KmsKeyArn"], f"{where}: payload key")

    def _publish_to_topic(self, who: Principal, topic_arn: str, source: str, context: dict[str, Any]) -> None:
        self.add(who, "sns:Publish", topic_arn, source, context)
        topics = {self.assembly.ref(t): t for t in self.assembly.resources("AWS::SNS::Topic")}
        if topic_arn not in topics:
            raise UnresolvableError(f"{source}: topic {topic_arn} is not in the templates")
        key = topics[topic_arn].properties.get("KmsMasterKeyId")
        if key:
            self.kms(who, ["kms:GenerateDataKey", "kms:Decrypt"], key, f"{source}: topic key")

    def _rule_targets(self) -> None:
        queues = {self.assembly.get_att(q, "Arn"): q for q in self.assembly.resources("AWS::SQS::Queue")}
        events = self.service(EVENTS)
        for rule in self.assembly.resources("AWS::Events::Rule"):
            name = self.assembly.ref(rule)
            context = {
                "aws:SourceArn": self.assembly.get_att(rule, "Arn"),
                "aws:SourceAccount": self.assembly.account,
            }
            for target in rule.properties.get("Targets", []):
                where = f"rule {name} target {target['Id']}"
                arn = target["Arn"]
                if "RoleArn" in target:
                    raise UnresolvableError(f"{where}: targets with a role are not modelled")
                if arn.startswith(self.arn("sns", "")):
                    self._publish_to_topic(events, arn, where, context)
                elif arn.startswith(self.arn("lambda", "function:")):
                    self.add(events, "lambda:InvokeFunction", arn, where, context)
                else:
                    raise UnresolvableError(f"{where}: target {arn} is not modelled")
                dead_letter = target.get("DeadLetterConfig", {}).get("Arn")
                if dead_letter:
                    self._send_to_queue(events, dead_letter, queues, f"{where}: dead-letter queue", context)

    def _alarm_actions(self) -> None:
        cloudwatch = self.service(CLOUDWATCH)
        for alarm in self.assembly.resources("AWS::CloudWatch::Alarm"):
            name = self.assembly.ref(alarm)
            context = {
                "aws:SourceArn": self.assembly.get_att(alarm, "Arn"),
                "aws:SourceAccount": self.assembly.account,
            }
            for kind in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                for action in alarm.properties.get(kind, []):
                    where = f"alarm {name} {kind}"
                    if not action.startswith(self.arn("sns", "")):
                        raise UnresolvableError(f"{where}: action {action} is not modelled")
                    self._publish_to_topic(cloudwatch, action, where, context)


# ---- helpers ------------------------------------------------------------------------------------


def _run(pipeline: Any, overrides: Mapping[str, str] | None = None) -> PipelineRun:
    return PipelineRun(
        pipeline.properties["PipelineName"],
        pipeline.properties["PipelineDefinition"]["PipelineDefinitionBody"],
        overrides,
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise UnresolvableError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _names_object(uri: str) -> bool:
    """An S3Prefix URI that names one object (``.../model.tar.gz``, a code asset), not a folder."""
    last = uri.rsplit("/", 1)[-1]
    return not uri.endswith("/") and "." in last


def _folder(uri: str) -> str:
    """How monitor_io lists a folder: the key with exactly one trailing '/'."""
    return uri.rstrip("/") + "/"


def _context_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return str(value)


def container_module(name: str):
    """The job module ``name`` (an entry script's name, or a module of one of the job packages)."""
    for job in sorted(p.name for p in (CONTAINER_DIR / "dogbreeds_jobs").iterdir() if p.is_dir()):
        if (CONTAINER_DIR / "dogbreeds_jobs" / job / f"{name}.py").is_file():
            return importlib.import_module(f"pipeline_code.container.dogbreeds_jobs.{job}.{name}")
    raise ModuleNotFoundError(f"no job module {name!r} under {CONTAINER_DIR / 'dogbreeds_jobs'}")


def deploy_module(name: str):
    """A module of the deploy Lambda, from its staged asset (what ships)."""
    return function_module("deploy_endpoint", name)
