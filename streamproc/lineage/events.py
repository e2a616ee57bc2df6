"""Lineage from source field to training field as OpenLineage RunEvents.

A worker emits one RunEvent (``START``) per topology each time it starts, which is when a
changed policy (schema annotations, tag mapping, strict mode or key versions) takes effect:
the event carries the column-lineage facet (masking flag per field) and a custom
``streamproc_policy`` facet (JSON Schema: ``docs/lineage-facet.json``) naming the transform
of each field with its parameters and key version, the policy fingerprint and the dropped
source fields.
Field names, actions and classes only: no record value is ever part of lineage.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import DatasetFacet, column_lineage_dataset, schema_dataset
from openlineage.client.serde import Serde

PRODUCER = "https://github.com/streamproc/streamproc"
NAMESPACE_PREFIX = "kafka://"

# Actions that hide the input value (OpenLineage's "masking" flag).
MASKING_ACTIONS = frozenset(
    {"redact", "mask", "pseudonymize", "encrypt", "generalize", "noise", "date_shift"}
)


@attr.define
class StreamprocPolicyFacet(DatasetFacet):
    """Which streamproc transform produced each output field, under which policy and keys."""

    policyFingerprint: str
    keyVersions: dict[str, int]
    fields: dict[str, dict[str, Any]]
    dropped: list[str]
    #: Record-level k-anonymity: the bound, and (after a batch run) what the output achieved.
    anonymity: dict[str, Any] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return PRODUCER + "/blob/main/docs/lineage-facet.json"


def _schema_facet(fields: list[tuple[str, str]]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in fields]
    )


def run_event(
    *,
    topology_name: str,
    namespace: str,
    source_topic: str,
    sink_topic: str,
    lineage: Any,
    policy_fingerprint: str,
    key_versions: Mapping[str, int],
    state: str = "START",
    run_id: str | None = None,
    when: dt.datetime | None = None,
    dataset_namespace: str | None = None,
    anonymity: Mapping[str, Any] | None = None,
) -> RunEvent:
    """The RunEvent describing one topology's field-level lineage.

    ``dataset_namespace`` replaces ``kafka://<namespace>`` (``"file"`` for a batch run on
    files); ``anonymity`` is the facet's k-anonymity entry (bound, measured k/l, NCP).
    """
    ns = dataset_namespace or NAMESPACE_PREFIX + namespace
    columns: dict[str, column_lineage_dataset.Fields] = {}
    policy_fields: dict[str, dict[str, Any]] = {}
    dropped: list[str] = []
    for f in lineage:
        if f.output_path is None:
            dropped.append(f.source_path)
            continue
        masking = f.action in MASKING_ACTIONS
        columns[f.output_path] = column_lineage_dataset.Fields(
            inputFields=[
                column_lineage_dataset.InputField(
                    namespace=ns,
                    name=source_topic,
                    field=f.source_path,
                    transformations=[
                        column_lineage_dataset.Transformation(
                            type="DIRECT",
                            subtype="TRANSFORMATION" if masking else "IDENTITY",
                            description=f"streamproc:{f.transform or f.action}",
                            masking=masking,
                        )
                    ],
                )
            ]
        )
        entry: dict[str, Any] = {
            "source": f.source_path,
            "action": f.action,
            "class": f.privacy_class,
            "transform": f.transform or f.action,
            "origin": f.origin,
        }
        if f.key is not None:
            entry["key"] = f.key
            entry["keyVersion"] = f.key_version
        policy_fields[f.output_path] = entry
    output = OutputDataset(
        namespace=ns,
        name=sink_topic,
        facets={
            "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(fields=columns),
            "streamproc_policy": StreamprocPolicyFacet(
                policyFingerprint=policy_fingerprint,
                keyVersions=dict(key_versions),
                fields=policy_fields,
                dropped=sorted(dropped),
                anonymity=dict(anonymity) if anonymity is not None else None,
            ),
        },
    )
    return RunEvent(
        eventType=getattr(RunState, state),
        eventTime=(when or dt.datetime.now(dt.UTC)).isoformat(),
        run=Run(runId=run_id or str(uuid.uuid4())),
        job=Job(namespace="streamproc", name=f"sanitize.{topology_name}"),
        inputs=[InputDataset(namespace=ns, name=source_topic)],
        outputs=[output],
        producer=PRODUCER,
    )


def to_json(event: RunEvent) -> str:
    return str(Serde.to_json(event))
