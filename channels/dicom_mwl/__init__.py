"""DICOM Modality Worklist SCP: matching (sans-I/O), responses, the C-FIND service, the source.

Importing :mod:`channels.dicom_mwl.scp` registers the ``dicom_mwl_scp`` source type.
"""
