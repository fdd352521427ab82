"""Read a Prometheus text exposition into samples, for exact before/after deltas."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, frozenset[tuple[str, str]]]


class Samples(dict[SampleKey, float]):
    """Every sample of an exposition by (name, labels); a duplicate fails the parse."""

    @classmethod
    def parse(cls, text: str) -> Samples:
        found = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in found, f"duplicate sample {key}"
                found[key] = sample.value
        return found

    def get_value(self, name: str, **labels: str) -> float:
        """The value of the sample name{labels}; it must exist."""
        key = (name, frozenset(labels.items()))
        assert key in self, f"no sample {name}{labels}"
        return self[key]

    def delta(self, before: Samples, name: str, **labels: str) -> float:
        """How much name{labels} grew since before (absent before counts as 0)."""
        return self.get_value(name, **labels) - before.get((name, frozenset(labels.items())), 0.0)

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value label takes among the samples called name."""
        return {dict(labels)[label] for n, labels in self if n == name and label in dict(labels)}
