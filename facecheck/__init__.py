"""facecheck: find StyleGAN faces and reused avatars in folders of profile photos, offline."""
