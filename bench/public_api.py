#!/usr/bin/env python3
"""The crate's public API as a sorted list of lines, from rustdoc's JSON.

Usage: public_api.py target/doc/vklive_pubsub.json > docs/public-api.txt

One line per public item, by every public path it can be named by: modules,
structs and their public fields, enums and their variants, traits and their
items, functions and methods with their signatures, constants, and the trait
implementations of each public type (derived or written; `Send` and `Sync`
among the automatic ones, no blanket implementations). Paths are where an
item is defined (`core::`, `alloc::`), or the facade users import it from
(`serde::`, `futures::`). Items marked
`#[doc(hidden)]` are not in rustdoc's JSON, so they are not listed.

`bench/public-api.sh` makes the JSON and runs this; see there.
"""

import json
import sys

AUTO_TRAITS_KEPT = {"Send", "Sync"}
# What `#[derive(PartialEq)]` adds for pattern matching on constants: it
# follows PartialEq, so listing it again says nothing.
TRAITS_SKIPPED = {"StructuralPartialEq"}
# Crates whose items users name through a facade: print the facade, so that
# a dependency moving an item between its own crates changes no line.
FACADES = {"serde_core": "serde", "futures_core": "futures"}


class Api:
    def __init__(self, doc):
        self.doc = doc
        self.index = doc["index"]
        self.paths = doc["paths"]
        self.crate = self.index[str(doc["root"])]["name"]
        self.lines = set()
        # Public path of each local item, the shortest one found.
        self.public = {}

    def item(self, id_):
        return self.index.get(str(id_))

    # ----------------------------------------------------------------- paths

    def collect_paths(self, module_id, prefix, seen):
        if module_id in seen:
            return
        seen.add(module_id)
        module = self.item(module_id)
        for child_id in module["inner"]["module"]["items"]:
            child = self.item(child_id)
            if child is None:
                continue
            kind = kind_of(child)
            if kind == "use":
                use = child["inner"]["use"]
                target = use["id"]
                if use["is_glob"]:
                    if target is not None and self.item(target):
                        self.collect_paths(target, prefix, seen)
                    continue
                name = use["name"]
                if target is not None and self.item(target):
                    self.remember(target, prefix + [name])
                    if kind_of(self.item(target)) == "module":
                        self.collect_paths(target, prefix + [name], seen)
                continue
            if child.get("name") is None or kind == "impl":
                continue
            self.remember(child_id, prefix + [child["name"]])
            if kind == "module":
                self.collect_paths(child_id, prefix + [child["name"]], seen)

    def remember(self, id_, path):
        known = self.public.setdefault(id_, [])
        if path not in known:
            known.append(path)

    def path_of(self, id_, written):
        """The path to print for a type or trait named in a signature."""
        if id_ in self.public:
            return "::".join(min(self.public[id_], key=len))
        summary = self.paths.get(str(id_))
        if summary:
            path = list(summary["path"])
            path[0] = FACADES.get(path[0], path[0])
            return "::".join(path)
        return written

    # ----------------------------------------------------------------- types

    def ty(self, t):
        if t is None:
            return "()"
        (kind, value), = t.items()
        if kind == "resolved_path":
            return self.resolved(value)
        if kind == "generic":
            return value
        if kind == "primitive":
            return value
        if kind == "borrowed_ref":
            life = value["lifetime"] + " " if value["lifetime"] else ""
            mutable = "mut " if value["is_mutable"] else ""
            return f"&{life}{mutable}{self.ty(value['type'])}"
        if kind == "raw_pointer":
            mutable = "mut" if value["is_mutable"] else "const"
            return f"*{mutable} {self.ty(value['type'])}"
        if kind == "tuple":
            inner = ", ".join(self.ty(x) for x in value)
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        if kind == "slice":
            return f"[{self.ty(value)}]"
        if kind == "array":
            return f"[{self.ty(value['type'])}; {value['len']}]"
        if kind == "impl_trait":
            return "impl " + self.bounds(value)
        if kind == "dyn_trait":
            traits = [self.poly_trait(p) for p in value["traits"]]
            if value.get("lifetime"):
                traits.append(value["lifetime"])
            return "dyn " + " + ".join(traits)
        if kind == "qualified_path":
            self_ty = self.ty(value["self_type"])
            trait = value.get("trait")
            args = self.generic_args(value.get("args"))
            if trait:
                return f"<{self_ty} as {self.resolved(trait)}>::{value['name']}{args}"
            return f"{self_ty}::{value['name']}{args}"
        if kind == "function_pointer":
            sig = value["sig"]
            inputs = ", ".join(self.ty(t) for _, t in sig["inputs"])
            out = sig["output"]
            return f"fn({inputs})" + (f" -> {self.ty(out)}" if out else "")
        if kind == "infer":
            return "_"
        if kind == "pat":
            return self.ty(value["type"])
        return f"<{kind}>"

    def resolved(self, path):
        return self.path_of(path["id"], path["path"]) + self.generic_args(path.get("args"))

    def generic_args(self, args):
        if not args:
            return ""
        (kind, value), = args.items() if isinstance(args, dict) else (("none", None),)
        if kind == "angle_bracketed":
            parts = [self.generic_arg(a) for a in value["args"]]
            for c in value["constraints"]:
                name = c["name"] + self.generic_args(c.get("args"))
                binding = c["binding"]
                if "equality" in binding:
                    term = binding["equality"]
                    rendered = self.ty(term["type"]) if "type" in term else term["constant"]["expr"]
                    parts.append(f"{name} = {rendered}")
                else:
                    parts.append(f"{name}: {self.bounds(binding['constraint'])}")
            return f"<{', '.join(parts)}>" if parts else ""
        if kind == "parenthesized":
            inputs = ", ".join(self.ty(t) for t in value["inputs"])
            out = value.get("output")
            return f"({inputs})" + (f" -> {self.ty(out)}" if out else "")
        return ""

    def generic_arg(self, arg):
        (kind, value), = arg.items() if isinstance(arg, dict) else (("infer", None),)
        if kind == "lifetime":
            return value
        if kind == "type":
            return self.ty(value)
        if kind == "const":
            return value["expr"]
        return "_"

    def poly_trait(self, poly):
        hrtb = self.hrtb(poly.get("generic_params") or [])
        return hrtb + self.resolved(poly["trait"])

    def hrtb(self, params):
        if not params:
            return ""
        return "for<" + ", ".join(p["name"] for p in params) + "> "

    def bounds(self, bounds):
        out = []
        for bound in bounds:
            (kind, value), = bound.items()
            if kind == "trait_bound":
                modifier = {"maybe": "?", "maybe_const": "~const "}.get(value["modifier"], "")
                out.append(modifier + self.hrtb(value.get("generic_params") or [])
                           + self.resolved(value["trait"]))
            elif kind == "outlives":
                out.append(value)
            elif kind == "use":
                out.append("use<" + ", ".join(str(x) for x in value) + ">")
        return " + ".join(out)

    def generics(self, generics):
        params = []
        for p in generics["params"]:
            (kind, value), = p["kind"].items()
            if kind == "lifetime":
                outlives = value.get("outlives") or []
                params.append(p["name"] + (": " + " + ".join(outlives) if outlives else ""))
            elif kind == "type":
                if value.get("is_synthetic"):
                    continue
                text = p["name"]
                if value["bounds"]:
                    text += ": " + self.bounds(value["bounds"])
                if value.get("default"):
                    text += " = " + self.ty(value["default"])
                params.append(text)
            elif kind == "const":
                params.append(f"const {p['name']}: {self.ty(value['type'])}")
        return f"<{', '.join(params)}>" if params else ""

    def where_clause(self, generics):
        preds = []
        for pred in generics["where_predicates"]:
            (kind, value), = pred.items()
            if kind == "bound_predicate":
                preds.append(self.hrtb(value.get("generic_params") or [])
                             + f"{self.ty(value['type'])}: {self.bounds(value['bounds'])}")
            elif kind == "lifetime_predicate":
                preds.append(f"{value['lifetime']}: {' + '.join(value['outlives'])}")
            elif kind == "eq_predicate":
                preds.append(f"{self.ty(value['lhs'])} = {self.ty(value['rhs']['type'])}")
        return " where " + ", ".join(preds) if preds else ""

    # ----------------------------------------------------------------- items

    def signature(self, name, function):
        header = function["header"]
        qualifiers = "".join(
            word for flag, word in (("is_const", "const "), ("is_async", "async "),
                                    ("is_unsafe", "unsafe "))
            if header.get(flag))
        inputs = []
        for arg_name, arg_ty in function["sig"]["inputs"]:
            if arg_name == "self":
                inputs.append(self_param(arg_ty) or f"self: {self.ty(arg_ty)}")
            else:
                inputs.append(f"{arg_name}: {self.ty(arg_ty)}")
        out = function["sig"]["output"]
        ret = f" -> {self.ty(out)}" if out else ""
        return (f"{qualifiers}fn {name}{self.generics(function['generics'])}"
                f"({', '.join(inputs)}){ret}{self.where_clause(function['generics'])}")

    def emit_item(self, id_, path):
        item = self.item(id_)
        kind = kind_of(item)
        value = item["inner"][kind]
        name = "::".join(path)
        attrs = "".join(f"#[{a}] " for a in item.get("attrs") or []
                        if a in ("non_exhaustive",))
        if kind == "module":
            self.lines.add(f"pub mod {name}")
        elif kind == "function":
            self.lines.add("pub " + self.signature(name, value))
        elif kind == "constant":
            self.lines.add(f"pub const {name}: {self.ty(value['type'])}")
        elif kind == "static":
            mutable = "mut " if value.get("is_mutable") else ""
            self.lines.add(f"pub static {mutable}{name}: {self.ty(value['type'])}")
        elif kind == "type_alias":
            self.lines.add(f"pub type {name}{self.generics(value['generics'])} = "
                           f"{self.ty(value['type'])}")
        elif kind == "struct":
            self.lines.add(f"{attrs}pub struct {name}{self.generics(value['generics'])}"
                           f"{self.where_clause(value['generics'])}")
            self.emit_fields(name, value["kind"])
            self.emit_impls(name, value["impls"])
        elif kind == "union":
            self.lines.add(f"pub union {name}{self.generics(value['generics'])}")
            for field_id in value["fields"]:
                self.emit_field(name, field_id)
            self.emit_impls(name, value["impls"])
        elif kind == "enum":
            self.lines.add(f"{attrs}pub enum {name}{self.generics(value['generics'])}"
                           f"{self.where_clause(value['generics'])}")
            for variant_id in value["variants"]:
                self.emit_variant(name, variant_id)
            self.emit_impls(name, value["impls"])
        elif kind == "trait":
            unsafe = "unsafe " if value.get("is_unsafe") else ""
            supertraits = (": " + self.bounds(value["bounds"])) if value["bounds"] else ""
            self.lines.add(f"pub {unsafe}trait {name}{self.generics(value['generics'])}"
                           f"{supertraits}{self.where_clause(value['generics'])}")
            for member_id in value["items"]:
                self.emit_assoc(name, member_id, prefix="")
        elif kind == "macro":
            self.lines.add(f"pub macro {name}!")
        elif kind in ("trait_alias", "proc_macro"):
            self.lines.add(f"pub {kind} {name}")

    def emit_fields(self, owner, kind):
        if kind == "unit":
            return
        (shape, value), = kind.items()
        if shape == "plain":
            for field_id in value["fields"]:
                self.emit_field(owner, field_id)
        elif shape == "tuple":
            for position, field_id in enumerate(value):
                if field_id is not None:
                    field = self.item(field_id)
                    self.lines.add(f"pub {owner}::{position}: "
                                   f"{self.ty(field['inner']['struct_field'])}")

    def emit_field(self, owner, field_id):
        field = self.item(field_id)
        if field is None or field["visibility"] != "public":
            return
        self.lines.add(f"pub {owner}::{field['name']}: {self.ty(field['inner']['struct_field'])}")

    def emit_variant(self, owner, variant_id):
        variant = self.item(variant_id)
        value = variant["inner"]["variant"]
        name = f"{owner}::{variant['name']}"
        kind = value["kind"]
        if kind == "plain":
            self.lines.add(name)
            return
        (shape, fields), = kind.items()
        if shape == "tuple":
            types = [self.ty(self.item(f)["inner"]["struct_field"]) if f is not None else "_"
                     for f in fields]
            self.lines.add(f"{name}({', '.join(types)})")
        else:
            self.lines.add(name)
            for field_id in fields["fields"]:
                field = self.item(field_id)
                self.lines.add(f"{name}::{field['name']}: "
                               f"{self.ty(field['inner']['struct_field'])}")

    def emit_impls(self, owner, impl_ids):
        for impl_id in impl_ids:
            impl = self.item(impl_id)["inner"]["impl"]
            if impl.get("blanket_impl") is not None:
                continue
            trait = impl.get("trait")
            generics = self.generics(impl["generics"])
            where = self.where_clause(impl["generics"])
            if trait is None:
                for member_id in impl["items"]:
                    member = self.item(member_id)
                    if member and member["visibility"] == "public":
                        self.emit_assoc(owner, member_id, prefix="pub ")
                continue
            if impl.get("is_synthetic") and trait["path"] not in AUTO_TRAITS_KEPT:
                continue
            if trait["path"].split("::")[-1] in TRAITS_SKIPPED:
                continue
            negative = "!" if impl.get("is_negative") else ""
            self.lines.add(f"impl{generics} {negative}{self.resolved(trait)} for "
                           f"{self.ty(impl['for'])}{where}")

    def emit_assoc(self, owner, member_id, prefix):
        member = self.item(member_id)
        if member is None:
            return
        kind = kind_of(member)
        value = member["inner"][kind]
        name = f"{owner}::{member['name']}"
        if kind == "function":
            self.lines.add(prefix + self.signature(name, value))
        elif kind == "assoc_const":
            self.lines.add(f"{prefix}const {name}: {self.ty(value['type'])}")
        elif kind == "assoc_type":
            bounds = (": " + self.bounds(value["bounds"])) if value.get("bounds") else ""
            default = (" = " + self.ty(value["type"])) if value.get("type") else ""
            self.lines.add(f"{prefix}type {name}{bounds}{default}")

    def run(self):
        root = self.doc["root"]
        self.collect_paths(root, [self.crate], set())
        self.lines.add(f"pub mod {self.crate}")
        for id_, paths in self.public.items():
            for path in paths:
                self.emit_item(id_, path)
        return sorted(self.lines)


def kind_of(item):
    return next(iter(item["inner"]))


def self_param(ty):
    if ty == {"generic": "Self"}:
        return "self"
    if "borrowed_ref" in ty and ty["borrowed_ref"]["type"] == {"generic": "Self"}:
        ref = ty["borrowed_ref"]
        life = ref["lifetime"] + " " if ref["lifetime"] else ""
        return f"&{life}{'mut ' if ref['is_mutable'] else ''}self"
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    for line in Api(doc).run():
        print(line)


if __name__ == "__main__":
    main()
