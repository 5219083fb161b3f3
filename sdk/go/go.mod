module helixflow

go 1.19
