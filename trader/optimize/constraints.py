"""Constraint expressions between parameters, parsed with `ast` and evaluated without eval().

Allowed: dotted paths (`exits.take_profit[1].gain`), numbers, comparisons (chained too),
`and`/`or`/`not`, unary minus and + − × ÷. Anything else (calls, names of builtins, attributes of
non-paths) is refused when the space is loaded, so a space file cannot run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from typing import Any

from trader.optimize.paths import parse_path

_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _node_path(node: ast.AST) -> str | None:
    """The dotted path an Attribute/Subscript/Name chain spells, or None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _node_path(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    if isinstance(node, ast.Subscript):
        inner = _node_path(node.value)
        idx = node.slice
        if inner is None or not (isinstance(idx, ast.Constant) and type(idx.value) is int):
            return None
        return f"{inner}[{idx.value}]"
    return None


def _check_expr(node: ast.AST, paths: list[str]) -> None:
    """Allow only comparisons, boolean logic, arithmetic, numbers and paths."""
    path = _node_path(node)
    if path is not None:
        paths.append(path)
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and \
            not isinstance(node.value, bool):
        return
    if isinstance(node, ast.Compare) and all(type(op) in _CMP for op in node.ops):
        for child in [node.left, *node.comparators]:
            _check_expr(child, paths)
        return
    if isinstance(node, ast.BoolOp):
        for child in node.values:
            _check_expr(child, paths)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
        _check_expr(node.operand, paths)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        _check_expr(node.left, paths)
        _check_expr(node.right, paths)
        return
    raise ValueError(f"unsupported expression {ast.unparse(node)!r} (use paths, numbers, "
                     "comparisons, and/or/not, + - * /)")


def evaluate_constraint(node: ast.AST, values: Mapping[str, Any]) -> Any:
    path = _node_path(node)
    if path is not None:
        return values[path]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Compare):
        left = evaluate_constraint(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = evaluate_constraint(comp, values)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        results = (evaluate_constraint(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        v = evaluate_constraint(node.operand, values)
        return (not v) if isinstance(node.op, ast.Not) else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp):
        left, right = evaluate_constraint(node.left, values), evaluate_constraint(node.right, values)
        return _BIN[type(node.op)](left, right)
    raise ValueError(ast.unparse(node))


def compile_constraint(expr: str) -> tuple[ast.Expression, list[str]]:
    tree = ast.parse(expr.strip(), mode="eval")
    paths: list[str] = []
    _check_expr(tree.body, paths)
    for p in paths:
        parse_path(p)
    return tree, paths
