# -*- Python -*-
# Runs the GoogleTest unit tests (build/bin/*Tests) as lit tests.

import os

import lit.formats

config.name = "ATMOE-Unit"
config.suffixes = []
config.test_exec_root = os.path.join(config.atmoe_obj_root, "bin")
config.test_source_root = config.test_exec_root
config.test_format = lit.formats.GoogleTest(".", "Tests")
