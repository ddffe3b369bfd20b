"""HuJSON: text -> a value tree (`JValue`) with a span on every value and key.

Takes source text; gives the tree or located P0xx diagnostics. Knows no policy.
"""

from policyc.grammar.cst import JArray, JBool, JMember, JNull, JNumber, JObject, JString, JValue
from policyc.grammar.hujson import parse, parse_text, read_source

__all__ = ["JArray", "JBool", "JMember", "JNull", "JNumber", "JObject", "JString", "JValue",
           "parse", "parse_text", "read_source"]
