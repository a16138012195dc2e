"""Faces: the engine protocol, the mediapipe engine, scans of images and videos, identity.

RGB frames flow in; faces, poses, scans and face descriptors flow out, for the rules to judge.
"""
