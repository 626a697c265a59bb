"""Evaluation: test sets in, instance logs, scores, reports and quality–latency plots out."""
