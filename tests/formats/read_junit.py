"""Validates a JUnit XML file against a JUnit XSD (xmlschema; not where SCHEMA is
`-`) and reads it with junitparser, as CI test views do; prints the suites, their
counts and their test cases as one JSON object.

    python3 read_junit.py FILE.xml SCHEMA.xsd|-
"""

import json
import sys

import junitparser
import xmlschema


def main():
    path, schema = sys.argv[1], sys.argv[2]
    if schema != "-":
        xmlschema.XMLSchema(schema).validate(path)
    xml = junitparser.JUnitXml.fromfile(path)
    suites = []
    for suite in xml:
        cases = []
        for case in suite:
            results = [
                {
                    "kind": type(r).__name__.lower(),
                    "type": r.type,
                    "message": r.message,
                    "text": r.text,
                }
                for r in case.result
            ]
            cases.append({"classname": case.classname, "name": case.name, "results": results})
        suites.append(
            {
                "name": suite.name,
                "tests": suite.tests,
                "failures": suite.failures,
                "errors": suite.errors,
                "skipped": suite.skipped,
                "cases": cases,
            }
        )
    json.dump(
        {"tests": xml.tests, "failures": xml.failures, "errors": xml.errors, "suites": suites},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
