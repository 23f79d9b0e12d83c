"""GGUF files: conversion, quantization and the converted cache."""
