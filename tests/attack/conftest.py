"""Attack findings that are still open.

Each entry is a test (its node id without parameters) that reproduces a broken
promise found by the attack suite and not yet fixed. The test runs and is
expected to fail (strict: once the promise is kept it passes, the run fails,
and the entry must be deleted here). Open findings are listed in the issues'
closing notes; nothing here counts as a pass.
"""

from __future__ import annotations

import pytest

OPEN_FINDINGS: frozenset[str] = frozenset(
    {
        "tests/attack/test_binding.py::test_a_thompson_explanation_names_the_model_the_next_selection_picks",
        "tests/attack/test_config.py::test_a_file_starting_with_a_utf8_bom_is_read",
        "tests/attack/test_config.py::test_a_key_in_a_base_url_query_string_is_refused",
        "tests/attack/test_routing.py::test_a_bit_flipped_state_is_refused",
        "tests/attack/test_routing.py::test_a_duplicated_model_column_is_refused",
        "tests/attack/test_routing.py::test_a_huge_finite_embedding_keeps_predictions_finite",
        "tests/attack/test_routing.py::test_a_lone_surrogate_prompt_is_a_value_error_naming_the_prompt",
        "tests/attack/test_routing.py::test_a_negative_seed_is_a_value_error_naming_it",
        "tests/attack/test_routing.py::test_a_table_that_is_not_utf8_is_a_clear_error",
        "tests/attack/test_routing.py::test_an_absurd_number_of_operating_points_is_refused",
        "tests/attack/test_routing.py::test_an_excel_csv_with_a_byte_order_mark_is_read",
        "tests/attack/test_routing.py::test_an_out_of_range_request_id_is_a_value_error_naming_it",
        "tests/attack/test_routing.py::test_bool_is_not_a_quality",
        "tests/attack/test_routing.py::test_bool_is_not_a_willingness_to_pay",
        "tests/attack/test_routing.py::test_calibrate_refuses_strings_and_bools_as_qualities",
        "tests/attack/test_routing.py::test_the_registry_routes_by_prompt",
        "tests/attack/test_secrets_and_cache.py::test_a_cached_answer_reports_the_token_counts_of_the_fresh_one",
        "tests/attack/test_secrets_and_cache.py::test_a_key_echoed_in_base64_never_reaches_errors_or_logs",
        "tests/attack/test_secrets_and_cache.py::test_a_redis_cache_leaves_no_socket_after_aclose",
        "tests/attack/test_secrets_and_cache.py::test_an_entry_copied_under_another_key_is_not_served",
        "tests/attack/test_secrets_and_cache.py::test_most_of_a_key_echoed_is_scrubbed_too",
        "tests/attack/test_shared_state.py::test_an_evicted_ledger_does_not_double_count_the_fleet",
        "tests/attack/test_shared_state.py::test_two_workers_add_up_after_one_loses_its_ledger",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every open finding's test as a strict expected failure."""
    for item in items:
        if item.nodeid.split("[")[0] in OPEN_FINDINGS:
            item.add_marker(
                pytest.mark.xfail(strict=True, reason="open attack finding (see tests/attack)")
            )
