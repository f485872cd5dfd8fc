"""The Kubernetes meta/v1 shapes both kinds embed, and the dialect every schema object shares.

Both kinds select nodes with a `LabelSelector`, report `Condition`s and carry `ObjectMeta`; they
are written once here, so AcceleratorPool and PowerBudget cannot come to read a selector in two
ways. `ApiModel` is the dialect: camelCase on the wire as Kubernetes writes it, unknown fields
refused (a misspelt field is an error, not a silent default) and frozen, because a spec read
from the API server is a fact, not a thing to edit in place.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from wattsched.api.validation import cel_rule, cel_validations


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class LabelSelectorRequirement(ApiModel):
    """One matchExpressions entry of a metav1.LabelSelector."""

    model_config = ConfigDict(
        json_schema_extra=cel_validations(
            cel_rule(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                "values must be non-empty for operator In or NotIn, and empty for Exists "
                "or DoesNotExist",
            )
        )
    )

    key: Annotated[str, Field(min_length=1, max_length=317, description="The label key.")]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=256, description="Label values for In and NotIn."
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        needs_values = self.operator in ("In", "NotIn")
        if needs_values != bool(self.values):
            raise ValueError(
                "values must be non-empty for operator In or NotIn, and empty for Exists "
                "or DoesNotExist"
            )
        return self


class LabelSelector(ApiModel):
    """A metav1.LabelSelector that must select something: an empty one would match every node."""

    model_config = ConfigDict(
        json_schema_extra=cel_validations(
            cel_rule(
                "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
                "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
                "nodeSelector must not be empty: give matchLabels or matchExpressions "
                "(an empty selector would match every node in the cluster)",
            )
        )
    )

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, description="Labels a node must carry, all of them."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Requirements a node must meet, all of them."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError(
                "nodeSelector must not be empty: give matchLabels or matchExpressions "
                "(an empty selector would match every node in the cluster)"
            )
        return self


class Condition(ApiModel):
    """metav1.Condition."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(min_length=1, max_length=1024)]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(default=None, ge=0)


class ObjectMeta(BaseModel):
    """The part of metav1.ObjectMeta wattsched reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str
    generation: int | None = None
    creation_timestamp: str | None = None
    uid: str | None = None
